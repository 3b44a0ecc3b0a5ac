//! `allowed_outbound_hosts`: parsing the entries a component was granted
//! (`scheme://host[:port]` with Spin's wildcards) and checking an outbound address
//! against them. Every outbound capability (HTTP, Redis, MQTT, ...) asks this one place,
//! so the rules cannot drift between them.
//!
//! Entries with `{{ var }}` templates must be rendered by the caller first: what a
//! template expands to is only known once variables resolve, and guessing would either
//! grant too much or break the app.

use anyhow::{Result, anyhow};

/// The port a scheme uses when an entry or a request gives none.
pub fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "redis" => 6379,
        "mqtt" => 1883,
        "mqtts" => 8883,
        "postgres" => 5432,
        "mysql" => 3306,
        _ => return None,
    })
}

#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<Entry>,
    allow_self: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    raw: String,
    scheme: Option<String>, // None = any
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`: strict subdomains of the stored name, not the name itself.
    SubdomainsOf(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// No port written and any scheme: each request scheme's own default port.
    SchemeDefault,
    One(u16),
    /// `start..end`, end exclusive, like Spin (and Rust) ranges.
    Range(u16, u16),
}

impl AllowedHosts {
    /// Parses entries; the error names the first bad entry.
    pub fn parse(entries: &[String]) -> Result<AllowedHosts> {
        let mut out = AllowedHosts::default();
        for raw in entries {
            match parse_entry(raw).map_err(|e| anyhow!("{raw:?}: {e}"))? {
                Parsed::SelfApp => out.allow_self = true,
                Parsed::Entry(e) => out.entries.push(e),
            }
        }
        Ok(out)
    }

    /// Whether `scheme://host[:port]` may be reached. `port: None` means the scheme's
    /// default port. `self` entries do not grant anything here: see `allows_self`.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme = scheme.to_ascii_lowercase();
        let host = normalize_host(host);
        let port = port.or_else(|| default_port(&scheme));
        self.entries.iter().any(|e| e.matches(&scheme, &host, port))
    }

    /// `allows` for an absolute URI; a URI without scheme or host is never allowed.
    pub fn allows_url(&self, url: &http::Uri) -> bool {
        match (url.scheme_str(), url.host()) {
            (Some(scheme), Some(host)) => self.allows(scheme, host, url.port_u16()),
            _ => false,
        }
    }

    /// Whether the component may call the app itself (`self`, `http://self`, ...).
    /// What "the app itself" means (which listener, which routes) is the caller's call.
    pub fn allows_self(&self) -> bool {
        self.allow_self
    }
}

impl Entry {
    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let host_ok = match &self.host {
            HostPattern::Any => !host.is_empty(),
            HostPattern::Exact(h) => h == host,
            HostPattern::SubdomainsOf(parent) => host
                .strip_suffix(parent.as_str())
                .and_then(|sub| sub.strip_suffix('.'))
                .is_some_and(|sub| !sub.is_empty()),
        };
        if !host_ok {
            return false;
        }
        match (&self.port, port) {
            (PortPattern::Any, _) => true,
            (_, None) => false,
            (PortPattern::SchemeDefault, Some(p)) => default_port(scheme) == Some(p),
            (PortPattern::One(want), Some(p)) => *want == p,
            (PortPattern::Range(start, end), Some(p)) => (*start..*end).contains(&p),
        }
    }
}

enum Parsed {
    SelfApp,
    Entry(Entry),
}

fn parse_entry(raw: &str) -> Result<Parsed, String> {
    if raw.contains("{{") {
        return Err(
            "unresolved template: substitute `{{ ... }}` variables before checking hosts".into(),
        );
    }
    if raw.is_empty() {
        return Err("empty entry".into());
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    if raw == "self" {
        return Ok(Parsed::SelfApp);
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err(
            "missing scheme (expected scheme://host[:port], e.g. \"https://example.com\")".into(),
        );
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "self" {
        return Ok(Parsed::SelfApp);
    }
    if scheme != "*" && !is_scheme(&scheme) {
        return Err(format!("{scheme:?} is not a valid scheme"));
    }

    // A lone trailing slash is harmless; anything after it is a path we cannot enforce.
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') {
        return Err("a path is not allowed (expected scheme://host[:port])".into());
    }
    if authority.contains(['?', '#']) {
        return Err("a query or fragment is not allowed (expected scheme://host[:port])".into());
    }
    if authority.contains('@') {
        return Err("user info (`user@`) is not allowed".into());
    }

    let (host, port, bracketed) = split_host_port(authority)?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    if bracketed && host.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(format!("[{host}] is not a valid IPv6 address"));
    }
    let host = normalize_host(host);
    if host == "self" {
        return Ok(Parsed::SelfApp);
    }
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(parent) = host.strip_prefix("*.") {
        check_host_name(parent)?;
        HostPattern::SubdomainsOf(parent.to_string())
    } else if host.contains('*') {
        return Err("`*` is only allowed as the whole host or as a leading `*.`".into());
    } else {
        check_host_name(&host)?;
        HostPattern::Exact(host)
    };

    let port = match port {
        Some(p) => parse_port(p)?,
        None if scheme == "*" => PortPattern::SchemeDefault,
        None => match default_port(&scheme) {
            Some(p) => PortPattern::One(p),
            None => {
                return Err(format!(
                    "scheme {scheme:?} has no default port; give one (\"{scheme}://host:1234\")"
                ));
            }
        },
    };
    let scheme = (scheme != "*").then_some(scheme);
    Ok(Parsed::Entry(Entry {
        raw: raw.to_string(),
        scheme,
        host,
        port,
    }))
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `(host, port, host was in brackets)`.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>, bool), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("unclosed `[` in IPv6 address".into());
        };
        let (host, after) = (&rest[..end], &rest[end + 1..]);
        return match after {
            "" => Ok((host, None, true)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port), true)),
                None => Err(format!("unexpected {after:?} after the IPv6 address")),
            },
        };
    }
    match authority.split_once(':') {
        None => Ok((authority, None, false)),
        Some((_, port)) if port.contains(':') => {
            Err("an IPv6 address must be written in brackets ([::1])".into())
        }
        Some((host, port)) => Ok((host, Some(port), false)),
    }
}

fn parse_port(p: &str) -> Result<PortPattern, String> {
    if p == "*" {
        return Ok(PortPattern::Any);
    }
    let number = |s: &str| -> Result<u16, String> {
        match s.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("{s:?} is not a port number (1-65535)")),
            Ok(n) => Ok(n),
        }
    };
    if let Some((start, end)) = p.split_once("..") {
        let (start, end) = (number(start)?, number(end)?);
        if start >= end {
            return Err(format!("empty port range {p:?} (the end is exclusive)"));
        }
        return Ok(PortPattern::Range(start, end));
    }
    Ok(PortPattern::One(number(p)?))
}

/// DNS names (letters, digits, `-`, `_`, dots) and IP addresses; IPv6 without brackets.
fn check_host_name(h: &str) -> Result<(), String> {
    if h.is_empty() || h.starts_with('.') || h.contains("..") {
        return Err(format!("{h:?} is not a valid host name"));
    }
    if h.contains(':') {
        return h
            .parse::<std::net::Ipv6Addr>()
            .map(drop)
            .map_err(|_| format!("{h:?} is not a valid IPv6 address"));
    }
    if h.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(())
    } else {
        Err(format!("{h:?} is not a valid host name"))
    }
}

/// Case-insensitive, without IPv6 brackets or a final root dot, so that `Example.COM.`,
/// `example.com` and `[::1]` / `::1` compare equal.
fn normalize_host(h: &str) -> String {
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    let h = h.strip_suffix('.').unwrap_or(h);
    h.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AllowedHosts::parse(&entries).unwrap_or_else(|e| panic!("{entries:?}: {e}"))
    }

    #[test]
    fn allows_table() {
        // (entries, scheme, host, port, allowed)
        type Case<'a> = (&'a [&'a str], &'a str, &'a str, Option<u16>, bool);
        let cases: &[Case] = &[
            (&["https://example.com"], "https", "example.com", None, true),
            (
                &["https://example.com"],
                "https",
                "example.com",
                Some(443),
                true,
            ),
            (
                &["https://example.com"],
                "https",
                "EXAMPLE.com.",
                None,
                true,
            ),
            (
                &["https://example.com"],
                "https",
                "example.com",
                Some(8443),
                false,
            ),
            (&["https://example.com"], "http", "example.com", None, false),
            (
                &["https://example.com"],
                "https",
                "api.example.com",
                None,
                false,
            ),
            (
                &["https://example.com/"],
                "https",
                "example.com",
                None,
                true,
            ),
            (
                &["http://example.com:8080"],
                "http",
                "example.com",
                Some(8080),
                true,
            ),
            (
                &["http://example.com:8080"],
                "http",
                "example.com",
                None,
                false,
            ),
            (
                &["http://example.com:*"],
                "http",
                "example.com",
                Some(1),
                true,
            ),
            (
                &["http://example.com:8000..8010"],
                "http",
                "example.com",
                Some(8000),
                true,
            ),
            (
                &["http://example.com:8000..8010"],
                "http",
                "example.com",
                Some(8009),
                true,
            ),
            (
                &["http://example.com:8000..8010"],
                "http",
                "example.com",
                Some(8010),
                false,
            ),
            (
                &["https://*.example.com"],
                "https",
                "api.example.com",
                None,
                true,
            ),
            (
                &["https://*.example.com"],
                "https",
                "a.b.example.com",
                None,
                true,
            ),
            (
                &["https://*.example.com"],
                "https",
                "example.com",
                None,
                false,
            ),
            (
                &["https://*.example.com"],
                "https",
                "badexample.com",
                None,
                false,
            ),
            (&["https://*"], "https", "anything.org", None, true),
            (&["https://*"], "https", "anything.org", Some(444), false),
            (&["*://example.com"], "http", "example.com", None, true),
            (
                &["*://example.com"],
                "https",
                "example.com",
                Some(443),
                true,
            ),
            (
                &["*://example.com"],
                "https",
                "example.com",
                Some(80),
                false,
            ),
            (&["*://example.com"], "foo", "example.com", None, false),
            (
                &["*://example.com:9000"],
                "foo",
                "example.com",
                Some(9000),
                true,
            ),
            (&["*://*:*"], "redis", "10.0.0.1", Some(1), true),
            (&["*://*:*"], "gopher", "x", None, true),
            (&["redis://cache"], "redis", "cache", Some(6379), true),
            (&["redis://cache"], "redis", "cache", None, true),
            (
                &["mqtt://broker", "mqtts://broker"],
                "mqtts",
                "broker",
                Some(8883),
                true,
            ),
            (&["postgres://db", "mysql://db"], "mysql", "db", None, true),
            (&["http://[::1]:8080"], "http", "[::1]", Some(8080), true),
            (&["http://[::1]:8080"], "http", "::1", Some(8080), true),
            (&["http://127.0.0.1"], "http", "127.0.0.1", None, true),
            (&["HTTP://Example.com"], "http", "example.com", None, true),
            (&[], "http", "example.com", None, false),
            (&["self"], "http", "self", None, false),
        ];
        for (entries, scheme, host, port, want) in cases {
            let got = hosts(entries).allows(scheme, host, *port);
            assert_eq!(
                got, *want,
                "{entries:?} allows {scheme}://{host} port {port:?}"
            );
        }
    }

    #[test]
    fn allows_url() {
        let h = hosts(&["https://example.com", "http://localhost:3000"]);
        let ok = |u: &str| h.allows_url(&u.parse().unwrap());
        assert!(ok("https://example.com/a/b?c=d"));
        assert!(ok("http://localhost:3000/"));
        assert!(!ok("http://localhost/"));
        assert!(!ok("https://example.com:444/"));
        assert!(!ok("/relative"));
    }

    #[test]
    fn self_entries() {
        for e in ["self", "http://self", "https://self", "self://anything"] {
            let h = hosts(&[e]);
            assert!(h.allows_self(), "{e}");
            // `self` grants the app itself, no host.
            assert!(!h.allows("http", "self", None), "{e}");
            assert!(!h.allows("https", "example.com", None), "{e}");
        }
        let h = hosts(&["https://example.com"]);
        assert!(!h.allows_self());
        assert!(!hosts(&[]).allows_self());
    }

    #[test]
    fn rejects_bad_entries() {
        let cases: &[(&str, &str)] = &[
            ("https://a.com/path", "a path is not allowed"),
            ("a.com", "missing scheme"),
            ("https://", "empty host"),
            ("https://:80", "empty host"),
            ("https://{{ host }}", "unresolved template"),
            ("{{ url }}", "unresolved template"),
            ("https://a.com?x=1", "query"),
            ("https://u@a.com", "user info"),
            ("https://a.com:0", "not a port number"),
            ("https://a.com:70000", "not a port number"),
            ("https://a.com:x", "not a port number"),
            ("https://a.com:9..9", "empty port range"),
            ("https://a.*.com", "`*` is only allowed"),
            ("https://*a.com", "`*` is only allowed"),
            ("tcp://a.com", "has no default port"),
            ("1http://a.com", "not a valid scheme"),
            ("http://::1", "in brackets"),
            ("http://[::1", "unclosed"),
            ("http://[zz]:80", "not a valid IPv6"),
            ("http://a b", "whitespace"),
            ("", "empty entry"),
            ("http://a..com", "not a valid host name"),
        ];
        for (entry, want) in cases {
            let e = AllowedHosts::parse(&[entry.to_string()])
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{entry}: {e}");
            assert!(e.starts_with(&format!("{entry:?}: ")), "{entry}: {e}");
        }
    }
}
