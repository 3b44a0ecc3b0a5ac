//! `[[trigger.http]]` entries -> `HttpTrigger`s: ids (given or generated), routes and
//! their uniqueness, executors, and handlers (a component, inline or by id, or a static
//! response). Ids and component references are shared with the other trigger types
//! (`component_ref`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Result;

use super::component_ref;
use super::diag::Ctx;
use super::manifest::{self, RouteSpec};
use super::{AppVariable, Component, HttpHandler, HttpTrigger, Route, StaticResponse};

pub fn resolve(
    ctx: &Ctx,
    raw: Vec<manifest::HttpTrigger>,
    components: &mut BTreeMap<String, Component>,
    base_dir: &Path,
    variables: &BTreeMap<String, AppVariable>,
) -> Result<Vec<HttpTrigger>> {
    let ids = component_ref::trigger_ids(
        ctx,
        "http",
        raw.iter().map(|t| (t.id.as_ref(), t.component.as_ref())),
    )?;
    let mut out = Vec::with_capacity(raw.len());
    // Route shape -> (index, id, route as written), for duplicate detection.
    let mut seen_routes: HashMap<String, (usize, String, String)> = HashMap::new();
    for (i, (t, id)) in raw.into_iter().zip(ids).enumerate() {
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
            (Some(component), None) => HttpHandler::Component(component_ref::resolve_ref(
                ctx, &place, &id, component, components, base_dir, variables,
            )?),
        };
        out.push(HttpTrigger { id, route, handler });
    }
    Ok(out)
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
}
