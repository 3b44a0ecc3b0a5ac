//! `guest_util`: the small request helpers that the example guest components
//! (`kv_*`, `mqtt_*`, `redis_*`, `vars_*`) share word for word: choosing the
//! route-relative path, percent-decoding path pieces, splitting comma lists and
//! the strict u64 parse. Plain functions over `&str`/`&[u8]`/`Option<&str>`, no
//! dependencies and no SDK types, so SDK 5 (WASI 0.2) and SDK 7 (WASI 0.3)
//! guests can both use them; response shaping stays in each guest because it
//! builds that SDK's types.

/// The path to route on: the `spin-path-info` header if present and non-empty,
/// else the URI path. The gateway puts the part after the route prefix in that
/// header, so routing does not depend on where the app is mounted; the URI path
/// is a fallback for a host that leaves the header out.
pub fn route_path<'a>(path_info: Option<&'a str>, uri_path: &'a str) -> &'a str {
    path_info
        .filter(|info| !info.is_empty())
        .unwrap_or(uri_path)
}

/// Decodes `%XX` escapes; `None` for a broken escape (a `%` not followed by two
/// hex digits), so a test never addresses a name it did not mean. `+` is kept.
/// Small enough not to need a crate.
pub fn percent_decode(input: &str) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex_digit(*bytes.get(i + 1)?)?;
            let low = hex_digit(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// [`percent_decode`] that also requires the result to be UTF-8.
pub fn percent_decode_utf8(input: &str) -> Option<String> {
    percent_decode(input).and_then(|bytes| String::from_utf8(bytes).ok())
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

/// The pieces of a comma-separated list, still encoded: split before decoding,
/// so an encoded `%2C` stays inside one piece. An empty string is an empty list
/// (not one empty piece), so a test can send an empty list to the host.
pub fn comma_list(input: &str) -> impl Iterator<Item = &str> {
    (!input.is_empty())
        .then(|| input.split(','))
        .into_iter()
        .flatten()
}

/// Strict decimal u64: no sign, spaces or empty string, so a corrupted counter
/// shows up instead of being read as some number.
pub fn parse_u64(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_path_prefers_non_empty_info() {
        assert_eq!(route_path(Some("/a"), "/x/a"), "/a");
        assert_eq!(route_path(Some(""), "/x/a"), "/x/a");
        assert_eq!(route_path(None, "/x/a"), "/x/a");
    }

    #[test]
    fn percent_decode_is_strict() {
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some(&b"a/b+c"[..]));
        assert_eq!(percent_decode("%ff").as_deref(), Some(&[0xff][..]));
        assert_eq!(percent_decode("%f"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode_utf8("%ff"), None);
        assert_eq!(percent_decode_utf8("k%20y").as_deref(), Some("k y"));
    }

    #[test]
    fn comma_list_empty_is_empty() {
        assert_eq!(comma_list("").count(), 0);
        assert_eq!(comma_list("a,,b%2C").collect::<Vec<_>>(), ["a", "", "b%2C"]);
        assert_eq!(comma_list(",").collect::<Vec<_>>(), ["", ""]);
    }

    #[test]
    fn parse_u64_is_strict() {
        assert_eq!(parse_u64(b"42"), Some(42));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b" 1"), None);
        assert_eq!(parse_u64(b"18446744073709551616"), None);
    }
}
