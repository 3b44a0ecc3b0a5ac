//! Raw manifest -> validated `App`: defaults applied, ids generated, paths resolved and
//! every cross-reference (trigger -> component, template -> variable) checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::diag::Ctx;
use super::manifest::{self, Source};
use super::{App, AppVariable, Component, files, names, template};
use crate::host::allowed_hosts::AllowedHosts;

pub fn resolve(
    ctx: &Ctx,
    raw: manifest::Manifest,
    manifest_path: PathBuf,
    base_dir: PathBuf,
) -> Result<App> {
    let manifest::Manifest {
        application,
        variables,
        trigger,
        component,
        ..
    } = raw;

    if application.name.trim().is_empty() {
        return Err(ctx.err("application.name", "must not be empty"));
    }
    let base = application
        .trigger
        .http
        .as_ref()
        .and_then(|h| h.base.as_deref());
    let http_base = normalize_base(base.unwrap_or("/")).map_err(|e| {
        ctx.err(
            "application.trigger.http.base",
            format_args!("{:?}: {e}", base.unwrap_or("")),
        )
    })?;

    let variables = resolve_variables(ctx, variables)?;

    if let Some(kind) = trigger.other.keys().next() {
        return Err(ctx.err(
            format_args!("trigger.{kind}"),
            format_args!("trigger type {kind:?} is not supported"),
        ));
    }
    if let Some(kind) = application.trigger.other.keys().next() {
        return Err(ctx.err(
            format_args!("application.trigger.{kind}"),
            format_args!("trigger type {kind:?} is not supported"),
        ));
    }

    let mut components = BTreeMap::new();
    for (id, raw) in component {
        let place = format!("component {id:?}");
        names::check_kebab(&id).map_err(|e| ctx.err(&place, format_args!("bad id: {e}")))?;
        let c = resolve_component(ctx, &place, id.clone(), raw, &base_dir, &variables, false)?;
        components.insert(id, c);
    }

    let http_triggers =
        super::http_trigger::resolve(ctx, trigger.http, &mut components, &base_dir, &variables)?;
    let redis_triggers = super::redis_trigger::resolve(
        ctx,
        application.trigger.redis,
        trigger.redis,
        &mut components,
        &base_dir,
        &variables,
    )?;
    let (mqtt_broker, mqtt_triggers) = super::mqtt_trigger::resolve(
        ctx,
        &application.name,
        application.trigger.mqtt,
        trigger.mqtt,
        &mut components,
        &base_dir,
        &variables,
    )?;

    Ok(App {
        name: application.name,
        version: application.version,
        description: application.description,
        authors: application.authors,
        manifest_path,
        base_dir,
        http_base,
        variables,
        components,
        http_triggers,
        redis_triggers,
        mqtt_broker,
        mqtt_triggers,
    })
}

fn resolve_variables(
    ctx: &Ctx,
    raw: BTreeMap<String, manifest::Variable>,
) -> Result<BTreeMap<String, AppVariable>> {
    let mut out = BTreeMap::new();
    for (name, v) in raw {
        let place = format!("variable {name:?}");
        names::check_snake(&name).map_err(|e| ctx.err(&place, format_args!("bad name: {e}")))?;
        if v.required && v.default.is_some() {
            return Err(ctx.err(
                &place,
                "`required = true` and a `default` contradict each other; remove one",
            ));
        }
        out.insert(
            name,
            AppVariable {
                default: v.default,
                required: v.required,
                secret: v.secret,
                description: v.description,
            },
        );
    }
    Ok(out)
}

pub(super) fn resolve_component(
    ctx: &Ctx,
    place: &str,
    id: String,
    c: manifest::Component,
    base_dir: &Path,
    variables: &BTreeMap<String, AppVariable>,
    inline: bool,
) -> Result<Component> {
    if let Some(key) = c.unsupported_keys().next() {
        return Err(ctx.err(place, format_args!("`{key}` is not supported")));
    }
    if c.allowed_http_hosts.is_some() {
        return Err(ctx.err(
            place,
            "`allowed_http_hosts` is deprecated and not supported; use `allowed_outbound_hosts` \
             (e.g. [\"https://example.com\"])",
        ));
    }

    let source = match &c.source {
        Source::Local(s) => local_source(base_dir, s)
            .map_err(|e| ctx.err(place, format_args!("source {s:?}: {e}")))?,
        Source::Remote(t) => {
            let keys: Vec<&str> = t.keys().map(String::as_str).collect();
            return Err(ctx.err(
                place,
                format_args!(
                    "source {{ {} }}: not supported: only local paths",
                    keys.join(", ")
                ),
            ));
        }
    };

    for (k, v) in &c.environment {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(ctx.err(
                place,
                format_args!("environment {k:?}: not a valid environment variable"),
            ));
        }
    }

    let files =
        files::resolve(base_dir, &c.files, &c.exclude_files).map_err(|e| ctx.err(place, e))?;

    for (i, host) in c.allowed_outbound_hosts.iter().enumerate() {
        let hplace = format!("{place}: allowed_outbound_hosts[{i}]");
        if template::has_template(host) {
            // Cannot be parsed until variables resolve; check what we can now.
            template::check_refs(host, variables)
                .map_err(|e| ctx.err(&hplace, format_args!("{host:?} {e}")))?;
        } else {
            AllowedHosts::parse(std::slice::from_ref(host)).map_err(|e| ctx.err(&hplace, e))?;
        }
    }

    for (i, label) in c.key_value_stores.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(ctx.err(
                place,
                format_args!("key_value_stores[{i}]: a store label must not be empty"),
            ));
        }
    }

    for (name, value) in &c.variables {
        let vplace = format!("{place}: variables.{name}");
        names::check_snake(name).map_err(|e| ctx.err(&vplace, format_args!("bad name: {e}")))?;
        template::check_refs(value, variables)
            .map_err(|e| ctx.err(&vplace, format_args!("{value:?} {e}")))?;
    }

    if let Some(build) = &c.build {
        // Only `spin build` runs this; still refuse nonsense so the manifest stays valid for it.
        let empty = match &build.command {
            manifest::Command::One(s) => s.trim().is_empty(),
            manifest::Command::Many(v) => v.is_empty(),
        };
        if empty {
            return Err(ctx.err(place, "build.command must not be empty"));
        }
    }

    Ok(Component {
        id,
        source,
        description: c.description,
        environment: c.environment,
        files,
        allowed_outbound_hosts: c.allowed_outbound_hosts,
        key_value_stores: c.key_value_stores,
        variables: c.variables,
        inline,
    })
}

fn local_source(base_dir: &Path, s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("empty path".into());
    }
    let path = base_dir.join(s);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err("not a file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such file".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `api/` -> `/api`, `` -> `/`. The base is a literal prefix: routes carry the patterns.
fn normalize_base(b: &str) -> Result<String, String> {
    if let Some(c) = b
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
    {
        return Err(format!("character {c:?} is not allowed"));
    }
    let parts: Vec<&str> = b.split('/').filter(|p| !p.is_empty()).collect();
    if parts
        .iter()
        .any(|p| p.starts_with(':') || *p == "..." || *p == "." || *p == "..")
    {
        return Err("the base is a plain path prefix; it cannot contain parameters, \"...\" or dot segments".into());
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_normalisation() {
        for (raw, want) in [
            ("/", "/"),
            ("", "/"),
            ("api", "/api"),
            ("/api/", "/api"),
            ("//a//b/", "/a/b"),
        ] {
            assert_eq!(normalize_base(raw).unwrap(), want, "{raw}");
        }
        for bad in ["/a/:x", "/a/...", "/a b", "/a?x", "/../x"] {
            assert!(normalize_base(bad).is_err(), "{bad}");
        }
    }
}
