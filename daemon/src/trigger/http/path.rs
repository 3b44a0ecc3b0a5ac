//! The request path the router matches: the raw path brought to one spelling, so that
//! paths a client or proxy may write differently reach the same route.
//!
//! - Empty segments collapse: `//x//y` is `/x/y` (Spin's router treats a run of
//!   slashes as one separator too).
//! - Percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, and
//!   the hex digits of the other percent-encodings upper-cased: `/%78` is `/x`, `%2f` is
//!   `%2F`. RFC 3986 (6.2.2) calls these spellings equivalent. A reserved character
//!   stays encoded, so `%2F` never becomes a segment separator.
//! - Dot segments are resolved as RFC 3986 (5.2.4) does: `/a/./b` is `/a/b`,
//!   `/a/../b` is `/b`; a `..` above the root is refused (400), never clamped.
//! - A trailing slash is kept: exact routes accept one, wildcards pass it on in
//!   `spin-path-info`.
//!
//! The component still sees the request URI exactly as it was sent; only the
//! matching, `spin-path-info` and the `:name` values come from this form.

use std::borrow::Cow;

/// Why a path has no normal form.
#[derive(Debug, PartialEq, Eq)]
pub struct AboveRoot;

/// The normal form of `raw` (a path starting with `/`, without a query). Borrows when
/// `raw` is already normal, which is what real clients send.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, AboveRoot> {
    if is_normal(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut segments: Vec<String> = Vec::new();
    for segment in raw.split('/') {
        let segment = decode_unreserved(segment);
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(AboveRoot)?;
            }
            _ => segments.push(segment),
        }
    }
    let mut normal = String::with_capacity(raw.len());
    for segment in &segments {
        normal.push('/');
        normal.push_str(segment);
    }
    // A trailing slash (or a last segment that was `.` or `..`: `/a/b/..` is the
    // folder `/a/`) is kept, so exact routes and wildcards treat it as before.
    let ends_in_folder = raw.ends_with('/') || raw.ends_with("/.") || raw.ends_with("/..");
    if normal.is_empty() || ends_in_folder {
        normal.push('/');
    }
    Ok(Cow::Owned(normal))
}

/// True if normalizing `raw` would not change it: no `%`, no empty segment other
/// than a trailing slash, no dot segment.
fn is_normal(raw: &str) -> bool {
    if raw.contains('%') {
        return false;
    }
    let inner = raw.strip_prefix('/').unwrap_or(raw);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if inner.is_empty() {
        return raw.len() <= 1;
    }
    inner
        .split('/')
        .all(|segment| !matches!(segment, "" | "." | ".."))
}

/// `segment` with its unreserved percent-encodings decoded and the others' hex digits
/// upper-cased. A `%` not followed by two hex digits is kept as it is.
fn decode_unreserved(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex_value(*b)),
                bytes.get(i + 2).and_then(|b| hex_value(*b)),
            )
        {
            let byte = hi << 4 | lo;
            if is_unreserved(byte) {
                out.push(byte as char);
            } else {
                out.push('%');
                out.push(HEX_UPPER[usize::from(hi)] as char);
                out.push(HEX_UPPER[usize::from(lo)] as char);
            }
            i += 3;
            continue;
        }
        // Copy up to the next `%` in one piece (keeps multi-byte characters whole).
        let next = bytes[i + 1..]
            .iter()
            .position(|&b| b == b'%')
            .map_or(bytes.len(), |n| i + 1 + n);
        out.push_str(&segment[i..next]);
        i = next;
    }
    out
}

/// A route's literal segment in the form requests are matched in.
pub fn normalize_segment(segment: &str) -> String {
    decode_unreserved(segment)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        let cases = [
            ("/", "/"),
            ("/x", "/x"),
            ("/x/", "/x/"),
            ("//x", "/x"),
            ("/x//y", "/x/y"),
            ("/x//", "/x/"),
            ("//", "/"),
            ("/%78", "/x"),
            ("/%78/%79%7A", "/x/yz"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%20b", "/a%20b"),
            ("/%7e%2D%2e%5F", "/~-._"),
            ("/a%zz", "/a%zz"),
            ("/a%", "/a%"),
            ("/a%4", "/a%4"),
            ("/caf\u{e9}%41", "/caf\u{e9}A"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/%2e%2E/b", "/b"),
            ("/.hidden/x", "/.hidden/x"),
            ("/a..b", "/a..b"),
            ("/x/..", "/"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn above_the_root_is_refused() {
        for raw in ["/..", "/../x", "/a/../../x", "/%2e%2e/x", "//../x"] {
            assert_eq!(normalize(raw), Err(AboveRoot), "{raw}");
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for raw in ["/", "/x", "/x/", "/a/b/c.txt", "/.well-known/x", "/a..b/"] {
            assert!(matches!(normalize(raw), Ok(Cow::Borrowed(_))), "{raw}");
        }
        for raw in ["//", "/x//y", "/%78", "/./x", "/x/.."] {
            assert!(matches!(normalize(raw), Ok(Cow::Owned(_))), "{raw}");
        }
    }
}
