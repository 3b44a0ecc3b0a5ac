//! HTTP route syntax of a Spin manifest: parsing and validating the `route` of a
//! `[[trigger.http]]` (`/hello`, `/users/:id`, `/static/...`, `/...`, `{ private = true }`).
//! Matching requests against routes is the router's job (`trigger::http::router`).

use std::fmt;

/// One path segment of a route, between two `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// `:name`: matches exactly one non-empty segment.
    Param(String),
}

/// A parsed HTTP route. The original text is kept because Spin echoes it back to the
/// component (`spin-raw-component-route`) and because error messages should quote what
/// the user wrote, not our normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    raw: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Reachable only from inside the app (service chaining), never from the router.
    Private,
    Path {
        segments: Vec<Segment>,
        wildcard: bool,
    },
}

/// Text shown for a private route wherever a route string is expected.
pub const PRIVATE_ROUTE_TEXT: &str = "{ private = true }";

/// Why a route was rejected; `Display` is the problem part of a manifest error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    Empty,
    NoLeadingSlash,
    EmptySegment,
    DotSegment(String),
    EmptyParamName,
    BadParamName(String),
    DuplicateParam(String),
    WildcardNotLast,
    BadChar(char),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::Empty => write!(f, "route is empty (use \"/\" for the root)"),
            RouteError::NoLeadingSlash => write!(f, "route must start with \"/\""),
            RouteError::EmptySegment => write!(f, "empty path segment (\"//\")"),
            RouteError::DotSegment(segment) => write!(
                f,
                "segment {segment:?} can never match: request paths are matched with their \
                 dot segments resolved"
            ),
            RouteError::EmptyParamName => write!(f, "empty parameter name"),
            RouteError::BadParamName(name) => write!(
                f,
                "parameter name {name:?} may contain only ASCII letters, digits, '_' and '-' \
                 (it becomes the header spin-path-match-{name})"
            ),
            RouteError::DuplicateParam(name) => {
                write!(f, "parameter \":{name}\" appears more than once")
            }
            RouteError::WildcardNotLast => {
                write!(
                    f,
                    "\"...\" is only allowed as the last segment (\"/prefix/...\")"
                )
            }
            RouteError::BadChar(c) => write!(f, "character {c:?} is not allowed in a route"),
        }
    }
}

impl std::error::Error for RouteError {}

impl Route {
    /// Parses a route string such as `/users/:id/...`.
    pub fn parse(raw: &str) -> Result<Route, RouteError> {
        if raw.is_empty() {
            return Err(RouteError::Empty);
        }
        if let Some(c) = raw
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
        {
            // A query or fragment in a route can never match: the router sees paths only.
            return Err(RouteError::BadChar(c));
        }
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(RouteError::NoLeadingSlash);
        };
        // A trailing slash on the route is tolerated: "/hello/" routes like "/hello".
        if raw.ends_with("//") {
            return Err(RouteError::EmptySegment);
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);

        let mut segments = Vec::new();
        let mut wildcard = false;
        if !rest.is_empty() {
            for part in rest.split('/') {
                if wildcard {
                    return Err(RouteError::WildcardNotLast);
                }
                if part.is_empty() {
                    return Err(RouteError::EmptySegment);
                }
                if part == "..." {
                    wildcard = true;
                    continue;
                }
                if part == "." || part == ".." {
                    return Err(RouteError::DotSegment(part.to_string()));
                }
                if let Some(name) = part.strip_prefix(':') {
                    check_param_name(name)?;
                    if segments
                        .iter()
                        .any(|s| matches!(s, Segment::Param(p) if p == name))
                    {
                        return Err(RouteError::DuplicateParam(name.to_string()));
                    }
                    segments.push(Segment::Param(name.to_string()));
                } else {
                    segments.push(Segment::Literal(part.to_string()));
                }
            }
        }
        Ok(Route {
            raw: raw.to_string(),
            kind: Kind::Path { segments, wildcard },
        })
    }

    pub fn private() -> Route {
        Route {
            raw: PRIVATE_ROUTE_TEXT.to_string(),
            kind: Kind::Private,
        }
    }

    /// The route as written in the manifest (`{ private = true }` for a private route).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn is_private(&self) -> bool {
        matches!(self.kind, Kind::Private)
    }

    /// Segments before any trailing wildcard; empty for `/`, `/...` and private routes.
    pub fn segments(&self) -> &[Segment] {
        match &self.kind {
            Kind::Private => &[],
            Kind::Path { segments, .. } => segments,
        }
    }

    /// Whether the route ends in `/...`.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.kind, Kind::Path { wildcard: true, .. })
    }

    /// Names of the `:param` segments, left to right.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments().iter().filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The route without its trailing `/...` (`/static/...` -> `/static`, `/...` -> ``),
    /// as Spin reports it in `spin-component-route`.
    pub fn component_route(&self) -> String {
        if self.is_private() {
            return String::new();
        }
        let raw = self.raw.strip_suffix('/').unwrap_or(&self.raw);
        match raw.strip_suffix("...") {
            Some(prefix) if self.is_wildcard() => {
                prefix.strip_suffix('/').unwrap_or(prefix).to_string()
            }
            _ => self.raw.clone(),
        }
    }

    /// A form that is equal for two routes exactly when they match the same requests:
    /// parameter names and a trailing slash do not matter. Used to detect duplicates.
    pub fn shape(&self) -> Option<String> {
        let Kind::Path { segments, wildcard } = &self.kind else {
            return None;
        };
        let mut out = String::new();
        for s in segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push(':'),
            }
        }
        if *wildcard {
            out.push_str("/...");
        }
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn check_param_name(name: &str) -> Result<(), RouteError> {
    if name.is_empty() {
        return Err(RouteError::EmptyParamName);
    }
    // The name ends up in a header name, so it has to be a header token.
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(RouteError::BadParamName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_string())
    }
    fn param(s: &str) -> Segment {
        Segment::Param(s.to_string())
    }

    #[test]
    fn parses_valid_routes() {
        let cases: &[(&str, Vec<Segment>, bool)] = &[
            ("/", vec![], false),
            ("/...", vec![], true),
            ("/hello", vec![lit("hello")], false),
            ("/hello/", vec![lit("hello")], false),
            ("/static/...", vec![lit("static")], true),
            (
                "/users/:id/posts/:post",
                vec![lit("users"), param("id"), lit("posts"), param("post")],
                false,
            ),
            ("/a/:b/...", vec![lit("a"), param("b")], true),
            ("/a%20b/x:y", vec![lit("a%20b"), lit("x:y")], false),
            ("/files.../x", vec![lit("files..."), lit("x")], false),
        ];
        for (raw, segments, wildcard) in cases {
            let r = Route::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(r.segments(), &segments[..], "{raw}");
            assert_eq!(r.is_wildcard(), *wildcard, "{raw}");
            assert_eq!(r.raw(), *raw);
            assert!(!r.is_private());
        }
    }

    #[test]
    fn rejects_bad_routes() {
        let cases: &[(&str, RouteError)] = &[
            ("", RouteError::Empty),
            ("hello", RouteError::NoLeadingSlash),
            ("/a/:", RouteError::EmptyParamName),
            ("/a/:/b", RouteError::EmptyParamName),
            ("/a/.../b", RouteError::WildcardNotLast),
            ("/.../...", RouteError::WildcardNotLast),
            ("/a/:id/:id", RouteError::DuplicateParam("id".into())),
            ("/a//b", RouteError::EmptySegment),
            ("//", RouteError::EmptySegment),
            ("/a/../b", RouteError::DotSegment("..".into())),
            ("/./...", RouteError::DotSegment(".".into())),
            ("/a?b=1", RouteError::BadChar('?')),
            ("/a b", RouteError::BadChar(' ')),
            ("/a/:x.y", RouteError::BadParamName("x.y".into())),
        ];
        for (raw, want) in cases {
            assert_eq!(Route::parse(raw).unwrap_err(), *want, "{raw}");
        }
        assert_eq!(
            Route::parse("/a/:").unwrap_err().to_string(),
            "empty parameter name"
        );
    }

    #[test]
    fn component_route_drops_wildcard() {
        for (raw, want) in [
            ("/...", ""),
            ("/static/...", "/static"),
            ("/static/.../", "/static"),
            ("/users/:id", "/users/:id"),
            ("/", "/"),
        ] {
            assert_eq!(Route::parse(raw).unwrap().component_route(), want, "{raw}");
        }
        assert_eq!(Route::private().component_route(), "");
    }

    #[test]
    fn shape_ignores_param_names_and_trailing_slash() {
        let shape = |r: &str| Route::parse(r).unwrap().shape().unwrap();
        assert_eq!(shape("/users/:id"), shape("/users/:name/"));
        assert_ne!(shape("/users/:id"), shape("/users/id"));
        assert_ne!(shape("/a"), shape("/a/..."));
        assert_eq!(shape("/"), "/");
        assert_eq!(shape("/..."), "/...");
        assert_eq!(Route::private().shape(), None);
    }

    #[test]
    fn private_route() {
        let r = Route::private();
        assert!(r.is_private());
        assert!(!r.is_wildcard());
        assert_eq!(r.raw(), PRIVATE_ROUTE_TEXT);
        assert_eq!(r.param_names().count(), 0);
    }
}
