//! `[application.trigger.redis]` and `[[trigger.redis]]` -> `RedisTrigger`s: each
//! trigger's address (its own or the app's), channel and delivery settings. Addresses may
//! hold `{{ variable }}` templates; those are checked once rendered (`check_address`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::diag::Ctx;
use super::{AppVariable, Component, RedisTrigger, component_ref, delivery, manifest, template};

pub fn resolve(
    ctx: &Ctx,
    app: Option<manifest::AppRedisTrigger>,
    raw: Vec<manifest::RedisTrigger>,
    components: &mut BTreeMap<String, Component>,
    base_dir: &Path,
    variables: &BTreeMap<String, AppVariable>,
) -> Result<Vec<RedisTrigger>> {
    let app_address = app.and_then(|a| a.address);
    if let Some(address) = &app_address {
        check(address, variables).map_err(|e| {
            ctx.err(
                "application.trigger.redis",
                format_args!("address {address:?}: {e}"),
            )
        })?;
    }
    let ids = component_ref::trigger_ids(
        ctx,
        "redis",
        raw.iter().map(|t| (t.id.as_ref(), Some(&t.component))),
    )?;
    let mut out = Vec::with_capacity(raw.len());
    for (i, (t, id)) in raw.into_iter().zip(ids).enumerate() {
        let place = format!("trigger.redis[{i}] (id {id:?})");
        let address = match (t.address, &app_address) {
            (Some(own), _) => {
                check(&own, variables)
                    .map_err(|e| ctx.err(&place, format_args!("address {own:?}: {e}")))?;
                own
            }
            (None, Some(app)) => app.clone(),
            (None, None) => {
                return Err(ctx.err(
                    &place,
                    "no `address`, and no [application.trigger.redis] address to fall back on",
                ));
            }
        };
        if t.channel.is_empty() {
            return Err(ctx.err(&place, "`channel` must not be empty"));
        }
        if let Some(dead) = &t.dead_letter_channel
            && dead.is_empty()
        {
            return Err(ctx.err(&place, "`dead_letter_channel` must not be empty"));
        }
        let delivery = delivery::resolve(ctx, &place, t.concurrency, t.max_attempts)?;
        let component = component_ref::resolve_ref(
            ctx,
            &place,
            &id,
            t.component,
            components,
            base_dir,
            variables,
        )?;
        out.push(RedisTrigger {
            id,
            component,
            channel: t.channel,
            address,
            dead_letter_channel: t.dead_letter_channel,
            delivery,
        });
    }
    Ok(out)
}

/// A template is checked for its references now and for its value once rendered.
fn check(address: &str, variables: &BTreeMap<String, AppVariable>) -> Result<(), String> {
    if template::has_template(address) {
        template::check_refs(address, variables)
    } else {
        check_address(address)
    }
}

/// `redis://[user:password@]host[:port][/db]`.
pub fn check_address(address: &str) -> Result<(), String> {
    let uri: http::Uri = address
        .parse()
        .map_err(|e| format!("not a URL ({e}); expected redis://host:port"))?;
    match uri.scheme_str() {
        Some("redis") => {}
        Some("rediss") => return Err("rediss:// (TLS) is not supported; use redis://".into()),
        _ => return Err("expected a redis://host:port address".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_address;

    #[test]
    fn addresses() {
        assert!(check_address("redis://127.0.0.1:6379").is_ok());
        assert!(check_address("redis://:secret@localhost/2").is_ok());
        assert!(
            check_address("rediss://h:6380")
                .unwrap_err()
                .contains("TLS")
        );
        assert!(check_address("http://h").is_err());
        assert!(check_address("localhost:6379").is_err());
        assert!(check_address("redis://").is_err());
    }
}
