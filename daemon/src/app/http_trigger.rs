//! `[[trigger.http]]` entries -> `HttpTrigger`s: ids (given or generated), routes and
//! their uniqueness, executors, and handlers (a component, inline or by id, or a static
//! response). A new trigger type (redis, mqtt) gets a sibling file like this one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::Result;

use super::diag::Ctx;
use super::manifest::{self, ComponentRef, RouteSpec};
use super::resolve::resolve_component;
use super::{AppVariable, Component, HttpHandler, HttpTrigger, Route, StaticResponse};

pub fn resolve(
    ctx: &Ctx,
    raw: Vec<manifest::HttpTrigger>,
    components: &mut BTreeMap<String, Component>,
    base_dir: &Path,
    variables: &BTreeMap<String, AppVariable>,
) -> Result<Vec<HttpTrigger>> {
    // Explicit ids first, so generated ids can steer clear of them.
    let mut used = BTreeSet::new();
    for (i, t) in raw.iter().enumerate() {
        if let Some(id) = &t.id {
            if id.is_empty() {
                return Err(ctx.err(format_args!("trigger.http[{i}]"), "`id` must not be empty"));
            }
            if !used.insert(id.clone()) {
                return Err(ctx.err(
                    format_args!("trigger.http[{i}] (id {id:?})"),
                    "another trigger already has this id",
                ));
            }
        }
    }

    let mut out = Vec::with_capacity(raw.len());
    // Route shape -> (index, id, route as written), for duplicate detection.
    let mut seen_routes: HashMap<String, (usize, String, String)> = HashMap::new();
    for (i, t) in raw.into_iter().enumerate() {
        let id = match &t.id {
            Some(id) => id.clone(),
            None => {
                let base = match &t.component {
                    Some(ComponentRef::Id(c)) => format!("trigger-{c}"),
                    _ => format!("trigger-{i}"),
                };
                let id = unique(&used, base, i);
                used.insert(id.clone());
                id
            }
        };
        let place = format!("trigger.http[{i}] (id {id:?})");

        if t.components.is_some() {
            return Err(ctx.err(&place, "`components` (middleware chains) is not supported"));
        }
        if t.dependencies.is_some() {
            return Err(ctx.err(&place, "`dependencies` is not supported"));
        }
        if let Some(executor) = &t.executor {
            check_executor(executor).map_err(|e| ctx.err(&place, e))?;
        }

        let route = match &t.route {
            RouteSpec::Private => Route::private(),
            RouteSpec::Path(p) => {
                Route::parse(p).map_err(|e| ctx.err(&place, format_args!("route {p:?}: {e}")))?
            }
        };
        // Spin only warns about two triggers with the same route and then picks one; we
        // refuse, because the other trigger would be silently unreachable. Routes that
        // differ only in parameter names or a trailing slash count as the same.
        if let Some(shape) = route.shape() {
            if let Some((j, other, other_route)) = seen_routes.get(&shape) {
                return Err(ctx.err(
                    &place,
                    format_args!(
                        "route {:?} matches the same requests as route {other_route:?} of trigger.http[{j}] (id {other:?})",
                        route.raw()
                    ),
                ));
            }
            seen_routes.insert(shape, (i, id.clone(), route.raw().to_string()));
        }

        let handler = match (t.component, t.static_response) {
            (Some(_), Some(_)) => {
                return Err(ctx.err(
                    &place,
                    "has both `component` and `static_response`; use one",
                ));
            }
            (None, None) => {
                return Err(ctx.err(&place, "needs a `component` or a `static_response`"));
            }
            (None, Some(s)) => {
                HttpHandler::Static(static_response(s).map_err(|e| ctx.err(&place, e))?)
            }
            (Some(ComponentRef::Id(c)), None) => {
                if !components.contains_key(&c) {
                    return Err(ctx.err(
                        &place,
                        format_args!("component {c:?} is not defined (no [component.{c}])"),
                    ));
                }
                HttpHandler::Component(c)
            }
            (Some(ComponentRef::Inline(raw)), None) => {
                let cid = format!("{id}-component");
                let cplace = format!("{place}: inline component");
                if components.contains_key(&cid) {
                    return Err(ctx.err(
                        &cplace,
                        format_args!("its generated id {cid:?} clashes with [component.{cid}]; rename one of them"),
                    ));
                }
                let c =
                    resolve_component(ctx, &cplace, cid.clone(), *raw, base_dir, variables, true)?;
                components.insert(cid.clone(), c);
                HttpHandler::Component(cid)
            }
        };
        out.push(HttpTrigger { id, route, handler });
    }
    Ok(out)
}

fn unique(used: &BTreeSet<String>, base: String, i: usize) -> String {
    if !used.contains(&base) {
        return base;
    }
    let mut n = i;
    loop {
        let candidate = format!("{base}-{n}");
        if !used.contains(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

fn check_executor(t: &toml::Table) -> Result<(), String> {
    match t.get("type") {
        None => Err("executor: `type` is missing (use { type = \"http\" })".into()),
        Some(toml::Value::String(kind)) => match kind.as_str() {
            "http" | "spin" => match t.keys().find(|k| *k != "type") {
                Some(k) => Err(format!("executor: unknown field `{k}` for type {kind:?}")),
                None => Ok(()),
            },
            "wagi" => {
                Err("executor type \"wagi\" is not supported (WASI HTTP components only)".into())
            }
            other => Err(format!(
                "executor type {other:?} is unknown (expected \"http\")"
            )),
        },
        Some(other) => Err(format!("executor: `type` must be a string, not {other}")),
    }
}

fn static_response(s: manifest::StaticResponse) -> Result<StaticResponse, String> {
    let status = s.status_code.unwrap_or(200);
    if !(100..=599).contains(&status) {
        return Err(format!(
            "static_response.status_code {status} is not an HTTP status (100-599)"
        ));
    }
    for (k, v) in &s.headers.0 {
        http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("static_response.headers: {k:?} is not a valid header name"))?;
        http::HeaderValue::from_str(v).map_err(|_| {
            format!("static_response.headers.{k}: {v:?} is not a valid header value")
        })?;
    }
    Ok(StaticResponse {
        status,
        headers: s.headers.0,
        body: s.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executors() {
        let t = |s: &str| toml::from_str::<toml::Table>(s).unwrap();
        assert!(check_executor(&t("type = \"http\"")).is_ok());
        assert!(check_executor(&t("type = \"spin\"")).is_ok());
        assert!(
            check_executor(&t("type = \"wagi\""))
                .unwrap_err()
                .contains("not supported")
        );
        assert!(check_executor(&t("type = \"http\"\nargv = \"x\"")).is_err());
        assert!(check_executor(&t("kind = \"http\"")).is_err());
    }

    #[test]
    fn generated_ids_are_unique() {
        let used: BTreeSet<String> = ["trigger-a".to_string(), "trigger-a-1".to_string()].into();
        assert_eq!(unique(&used, "trigger-b".into(), 1), "trigger-b");
        assert_eq!(unique(&used, "trigger-a".into(), 1), "trigger-a-2");
    }
}
