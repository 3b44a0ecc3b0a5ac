//! HTTP route matching: which trigger handles a request path, and the values Spin passes
//! to the component about the match (`spin-matched-route`, `spin-path-info`,
//! `spin-path-match-<name>`, ...).
//!
//! Routes are ordered once, at construction, from most to least specific; a request then
//! takes the first route that matches. Specificity compares routes segment by segment
//! from the left: a literal beats a parameter, a parameter beats the end of an exact
//! route, and that beats a `...` wildcard. Because the order depends only on the
//! patterns, "first match in sorted order" is the same as "most specific match".

use super::path;
use crate::app::{HttpTrigger, Segment};

pub struct Router {
    base: String,
    /// Public routes, most specific first; ties keep manifest order.
    by_specificity: Vec<Entry>,
    /// The same routes in manifest order, as indexes into `by_specificity`.
    in_manifest_order: Vec<usize>,
}

struct Entry {
    trigger: HttpTrigger,
    /// Base and route joined, as written: `/api/users/:id`.
    full_pattern: String,
    /// Base segments (always literal) followed by the route's segments.
    segments: Vec<Segment>,
    wildcard: bool,
    rank: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub trigger: &'a HttpTrigger,
    /// Full pattern including the base, as written (`spin-matched-route`).
    pub matched_route: String,
    /// The trigger's route as written (`spin-raw-component-route`).
    pub raw_component_route: String,
    /// The route without a trailing `/...` (`spin-component-route`).
    pub component_route: String,
    /// The app's HTTP base (`spin-base-path`).
    pub base_path: String,
    /// What a wildcard matched, with its leading `/`; `""` for exact routes (`spin-path-info`).
    pub path_info: String,
    /// `:name` values as they appear in the path, not percent-decoded (`spin-path-match-<name>`).
    pub params: Vec<(String, String)>,
}

// Ranks of one position of a pattern; higher is more specific.
const RANK_LITERAL: u8 = 4;
const RANK_PARAM: u8 = 3;
const RANK_END: u8 = 2;
const RANK_WILDCARD: u8 = 1;

impl Router {
    /// `base` is the app's normalised HTTP base (`/` or `/prefix`); every route is below it.
    /// Private routes are left out: they are never reachable from outside.
    pub fn new(base: &str, triggers: &[HttpTrigger]) -> Router {
        let base_segments: Vec<Segment> = base
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| Segment::Literal(path::normalize_segment(s)))
            .collect();
        let base = if base_segments.is_empty() {
            "/".to_string()
        } else {
            base.trim_end_matches('/').to_string()
        };

        let mut entries: Vec<(usize, Entry)> = triggers
            .iter()
            .filter(|t| !t.route.is_private())
            .enumerate()
            .map(|(order, t)| {
                let mut segments = base_segments.clone();
                segments.extend(t.route.segments().iter().map(|s| match s {
                    Segment::Literal(l) => Segment::Literal(path::normalize_segment(l)),
                    other => other.clone(),
                }));
                let wildcard = t.route.is_wildcard();
                let rank = rank(&segments, wildcard);
                let full_pattern = join(&base, t.route.raw());
                (
                    order,
                    Entry {
                        trigger: t.clone(),
                        full_pattern,
                        segments,
                        wildcard,
                        rank,
                    },
                )
            })
            .collect();
        // Stable: equally specific routes keep manifest order, so the first one written wins.
        entries.sort_by(|(_, a), (_, b)| b.rank.cmp(&a.rank));

        let mut in_manifest_order = vec![0; entries.len()];
        for (sorted_index, (order, _)) in entries.iter().enumerate() {
            in_manifest_order[*order] = sorted_index;
        }
        let by_specificity = entries.into_iter().map(|(_, e)| e).collect();
        Router {
            base,
            by_specificity,
            in_manifest_order,
        }
    }

    /// The most specific trigger for `path`, in the form `path::normalize` gives it
    /// (percent-encoded, without a query).
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let path = if path.is_empty() { "/" } else { path };
        if !path.starts_with('/') {
            return None;
        }
        self.by_specificity.iter().find_map(|e| {
            let (params, path_info) = e.matches(path)?;
            Some(RouteMatch {
                trigger: &e.trigger,
                matched_route: e.full_pattern.clone(),
                raw_component_route: e.trigger.route.raw().to_string(),
                component_route: e.trigger.route.component_route(),
                base_path: self.base.clone(),
                path_info: path_info.to_string(),
                params,
            })
        })
    }

    /// Public routes in manifest order, with their full patterns (for startup logs).
    pub fn routes(&self) -> impl Iterator<Item = (&str, &HttpTrigger)> {
        self.in_manifest_order.iter().map(|&i| {
            let e = &self.by_specificity[i];
            (e.full_pattern.as_str(), &e.trigger)
        })
    }
}

impl Entry {
    /// Parameters and path info if `path` (starting with `/`) matches.
    fn matches<'p>(&self, path: &'p str) -> Option<(Vec<(String, String)>, &'p str)> {
        let mut params = Vec::new();
        // `pos` is always at a `/` (or the end): the start of the next segment.
        let mut pos = 0;
        for segment in &self.segments {
            if pos >= path.len() {
                return None;
            }
            let start = pos + 1;
            let end = path[start..].find('/').map_or(path.len(), |i| start + i);
            let actual = &path[start..end];
            match segment {
                Segment::Literal(l) if l == actual => {}
                Segment::Param(name) if !actual.is_empty() => {
                    params.push((name.clone(), actual.to_string()))
                }
                _ => return None,
            }
            pos = end;
        }
        let rest = &path[pos..];
        if self.wildcard {
            Some((params, rest))
        } else if rest.is_empty() || rest == "/" {
            // One trailing slash is tolerated on exact routes: `/hello/` is `/hello`.
            Some((params, ""))
        } else {
            None
        }
    }
}

fn rank(segments: &[Segment], wildcard: bool) -> Vec<u8> {
    let mut rank: Vec<u8> = segments
        .iter()
        .map(|s| match s {
            Segment::Literal(_) => RANK_LITERAL,
            Segment::Param(_) => RANK_PARAM,
        })
        .collect();
    rank.push(if wildcard { RANK_WILDCARD } else { RANK_END });
    rank
}

/// `/` + `/hello` -> `/hello`; `/api` + `/...` -> `/api/...`; `/api` + `/` -> `/api`.
fn join(base: &str, route: &str) -> String {
    match (base, route) {
        ("/", r) => r.to_string(),
        (b, "/") => b.to_string(),
        (b, r) => format!("{b}{r}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{HttpHandler, Route};

    fn trigger(id: &str, route: &str) -> HttpTrigger {
        let route = if route == "private" {
            Route::private()
        } else {
            Route::parse(route).unwrap()
        };
        HttpTrigger {
            id: id.to_string(),
            route,
            handler: HttpHandler::Component(id.to_string()),
        }
    }

    fn router(base: &str, routes: &[(&str, &str)]) -> Router {
        let triggers: Vec<HttpTrigger> = routes.iter().map(|(id, r)| trigger(id, r)).collect();
        Router::new(base, &triggers)
    }

    /// The winner for a raw request path, normalized as the server does.
    fn winner(r: &Router, raw: &str) -> Option<String> {
        let normal = path::normalize(raw).ok()?;
        r.route(&normal).map(|m| m.trigger.id.clone())
    }

    #[test]
    fn matching_table() {
        // (routes, request path, expected trigger id)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            (&[("a", "/hello")], "/hello", Some("a")),
            (&[("a", "/hello")], "/hello/", Some("a")),
            (&[("a", "/hello")], "/hello//", Some("a")),
            (&[("a", "/hello")], "//hello", Some("a")),
            (&[("a", "/hello")], "/%68ello", Some("a")),
            (&[("a", "/hello")], "/x/../hello", Some("a")),
            (&[("a", "/hello")], "/../hello", None),
            (&[("a", "/x/...")], "//x", Some("a")),
            (&[("a", "/x/...")], "/%78/y", Some("a")),
            (&[("a", "/%78/...")], "/x/y", Some("a")),
            (&[("a", "/a%2Fb")], "/a%2fb", Some("a")),
            (&[("a", "/a/b")], "/a%2Fb", None),
            (&[("a", "/hello")], "/hello/x", None),
            (&[("a", "/hello")], "/hell", None),
            (&[("a", "/hello")], "/Hello", None),
            (&[("a", "/hello")], "/", None),
            (&[("a", "/")], "/", Some("a")),
            (&[("a", "/")], "", Some("a")),
            (&[("a", "/")], "/x", None),
            (&[("a", "/...")], "/", Some("a")),
            (&[("a", "/...")], "", Some("a")),
            (&[("a", "/...")], "/any/thing/deeper", Some("a")),
            (&[("a", "/x/...")], "/x", Some("a")),
            (&[("a", "/x/...")], "/x/", Some("a")),
            (&[("a", "/x/...")], "/x/y/z", Some("a")),
            (&[("a", "/x/...")], "/xy", None),
            (&[("a", "/x/...")], "/", None),
            (&[("a", "/users/:id")], "/users/42", Some("a")),
            (&[("a", "/users/:id")], "/users/42/", Some("a")),
            (&[("a", "/users/:id")], "/users/", None),
            (&[("a", "/users/:id")], "/users", None),
            (&[("a", "/users/:id")], "/users/42/posts", None),
            (&[("a", "/a%20b")], "/a%20b", Some("a")),
            (&[("a", "/a%20b")], "/a b", None),
            (&[("a", "private")], "/", None),
            (&[("a", "private"), ("b", "/...")], "/x", Some("b")),
            (&[("a", "/x")], "no-slash", None),
            (&[("a", "/...")], "*", None),
        ];
        for (routes, path, want) in cases {
            let r = router("/", routes);
            assert_eq!(
                winner(&r, path).as_deref(),
                *want,
                "routes {routes:?}, path {path:?}"
            );
        }
    }

    #[test]
    fn precedence_table() {
        // The most specific route wins whatever the manifest order: each case is tried
        // with the routes in both orders.
        let cases: &[(&str, &str, &str, &str)] = &[
            // (route a, route b, path, winner)
            ("/hello", "/...", "/hello", "a"),
            ("/hello", "/hello/...", "/hello", "a"),
            ("/hello", "/hello/...", "/hello/", "a"),
            ("/hello/x", "/hello/...", "/hello/x", "a"),
            ("/hello/...", "/...", "/hello/x", "a"),
            ("/hello/...", "/...", "/hello", "a"),
            ("/hello/...", "/...", "/other", "b"),
            ("/users/me", "/users/:id", "/users/me", "a"),
            ("/users/me", "/users/:id", "/users/you", "b"),
            ("/users/:id", "/users/...", "/users/42", "a"),
            ("/users/:id", "/users/...", "/users/42/x", "b"),
            ("/a/...", "/:x/b", "/a/b", "a"),
            ("/:x/b", "/:x/...", "/a/b", "a"),
            ("/a/b/...", "/a/...", "/a/b/c", "a"),
            ("/a/:b/...", "/a/...", "/a/b/c", "a"),
            ("/a/:b/c", "/a/:b/...", "/a/b/c", "a"),
            ("/", "/...", "/", "a"),
            ("/:a/:b", "/x/...", "/x/y", "b"),
        ];
        for (a, b, path, want) in cases {
            let forward = router("/", &[("a", a), ("b", b)]);
            let backward = router("/", &[("b", b), ("a", a)]);
            assert_eq!(
                winner(&forward, path).as_deref(),
                Some(*want),
                "{a} vs {b} for {path}"
            );
            assert_eq!(
                winner(&backward, path).as_deref(),
                Some(*want),
                "{b} vs {a} for {path}"
            );
        }
    }

    #[test]
    fn equal_routes_first_written_wins() {
        let r = router("/", &[("a", "/u/:id"), ("b", "/u/:name")]);
        assert_eq!(winner(&r, "/u/1").as_deref(), Some("a"));
    }

    #[test]
    fn match_details() {
        let r = router(
            "/",
            &[
                ("s", "/static/..."),
                ("u", "/users/:id/posts/:post"),
                ("all", "/..."),
                ("h", "/hello/"),
            ],
        );

        let m = r.route("/static/css/a.css").unwrap();
        assert_eq!(m.trigger.id, "s");
        assert_eq!(m.matched_route, "/static/...");
        assert_eq!(m.raw_component_route, "/static/...");
        assert_eq!(m.component_route, "/static");
        assert_eq!(m.base_path, "/");
        assert_eq!(m.path_info, "/css/a.css");
        assert!(m.params.is_empty());

        let m = r.route("/static").unwrap();
        assert_eq!(m.path_info, "");
        let m = r.route("/static/").unwrap();
        assert_eq!(m.path_info, "/");

        let m = r.route("/users/a%2Fb/posts/7").unwrap();
        assert_eq!(m.trigger.id, "u");
        assert_eq!(m.component_route, "/users/:id/posts/:post");
        assert_eq!(m.path_info, "");
        assert_eq!(
            m.params,
            vec![
                ("id".to_string(), "a%2Fb".to_string()),
                ("post".to_string(), "7".to_string())
            ]
        );

        let m = r.route("/").unwrap();
        assert_eq!(m.trigger.id, "all");
        assert_eq!(m.component_route, "");
        assert_eq!(m.path_info, "/");
        let m = r.route("/x/y").unwrap();
        assert_eq!(m.path_info, "/x/y");

        let m = r.route("/hello").unwrap();
        assert_eq!(m.trigger.id, "h");
        assert_eq!(m.raw_component_route, "/hello/");
        assert_eq!(m.path_info, "");
    }

    #[test]
    fn base_prefixes_routes() {
        let r = router(
            "/api",
            &[("u", "/users/:id"), ("root", "/"), ("rest", "/...")],
        );
        assert_eq!(r.route("/api").unwrap().base_path, "/api");
        assert_eq!(winner(&r, "/users/1"), None);
        assert_eq!(winner(&r, "/apiusers/1"), None);

        let m = r.route("/api/users/1").unwrap();
        assert_eq!(m.trigger.id, "u");
        assert_eq!(m.matched_route, "/api/users/:id");
        assert_eq!(m.raw_component_route, "/users/:id");
        assert_eq!(m.base_path, "/api");
        assert_eq!(m.params, vec![("id".to_string(), "1".to_string())]);

        let m = r.route("/api").unwrap();
        assert_eq!(m.trigger.id, "root");
        assert_eq!(m.matched_route, "/api");
        assert_eq!(winner(&r, "/api/").as_deref(), Some("root"));

        let m = r.route("/api/x/y").unwrap();
        assert_eq!(m.trigger.id, "rest");
        assert_eq!(m.matched_route, "/api/...");
        assert_eq!(m.component_route, "");
        assert_eq!(m.path_info, "/x/y");
        assert_eq!(winner(&r, "/other"), None);
    }

    #[test]
    fn routes_in_manifest_order_without_private() {
        let r = router(
            "/v1",
            &[("b", "/..."), ("p", "private"), ("a", "/a/:x"), ("c", "/")],
        );
        let listed: Vec<(String, String)> = r
            .routes()
            .map(|(p, t)| (p.to_string(), t.id.clone()))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("/v1/...".to_string(), "b".to_string()),
                ("/v1/a/:x".to_string(), "a".to_string()),
                ("/v1".to_string(), "c".to_string()),
            ]
        );
        assert_eq!(router("/", &[]).routes().count(), 0);
        assert!(router("/", &[]).route("/").is_none());
    }
}
