//! Resolving variables: every app variable gets its value from the first
//! provider that has one, then each component's `variables` and templated
//! `allowed_outbound_hosts`, and the pub/sub triggers' addresses, credentials
//! and topics, are rendered with those values.
//!
//! Providers, first match wins: `--variable NAME=VALUE` (or `@file.json` /
//! `@file.toml` holding a table of them), the environment variable
//! `SPIN_VARIABLE_<NAME>` (upper case), the manifest's `default`. All values
//! are static, so everything resolves once at start-up and a missing required
//! value stops the start, naming the variable. Values are never logged:
//! any of them may be a secret.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use super::{App, mqtt_trigger, redis_trigger, template};

/// Values given on the command line, by variable name.
#[derive(Debug, Default, Clone)]
pub struct CommandLineValues {
    values: BTreeMap<String, String>,
    /// A service's variables file configures the device, whatever app it
    /// runs: values for names the app does not declare are skipped there.
    /// On `up`'s command line such a name is a typo, and an error.
    skip_undeclared: bool,
}

impl CommandLineValues {
    /// Parses `--variable` arguments: `NAME=VALUE`, `@FILE.json` or `@FILE.toml`.
    /// Later arguments override earlier ones.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut values = BTreeMap::new();
        for arg in args {
            if let Some(file) = arg.strip_prefix('@') {
                values.extend(read_file(Path::new(file))?);
            } else if let Some((name, value)) = arg.split_once('=') {
                values.insert(name.trim().to_string(), value.to_string());
            } else {
                bail!("--variable {arg}: expected NAME=VALUE, @FILE.json or @FILE.toml");
            }
        }
        Ok(Self {
            values,
            skip_undeclared: false,
        })
    }

    /// The values in a service's variables file (TOML or JSON), for any app:
    /// names the app does not declare are skipped.
    pub fn from_service_file(path: &Path) -> Result<Self> {
        Ok(Self {
            values: read_file(path)?,
            skip_undeclared: true,
        })
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--variable @{}: cannot read it", path.display()))?;
    let table: BTreeMap<String, toml::Value> = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let json: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
                .with_context(|| format!("--variable @{}: not a JSON object", path.display()))?;
            return json
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k, s)),
                    serde_json::Value::Number(n) => Ok((k, n.to_string())),
                    serde_json::Value::Bool(b) => Ok((k, b.to_string())),
                    _ => bail!(
                        "--variable @{}: {k}: values must be strings",
                        path.display()
                    ),
                })
                .collect();
        }
        Some("toml") => toml::from_str(&text)
            .with_context(|| format!("--variable @{}: not a TOML table", path.display()))?,
        _ => bail!(
            "--variable @{}: the file must end in .json or .toml",
            path.display()
        ),
    };
    table
        .into_iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => Ok((k, s)),
            toml::Value::Integer(i) => Ok((k, i.to_string())),
            toml::Value::Float(f) => Ok((k, f.to_string())),
            toml::Value::Boolean(b) => Ok((k, b.to_string())),
            _ => bail!(
                "--variable @{}: {k}: values must be strings",
                path.display()
            ),
        })
        .collect()
}

/// Resolves `app`'s variables and renders the templates that use them, in
/// place: afterwards each component's `variables` hold final values and its
/// `allowed_outbound_hosts` hold no templates. `env` looks up environment
/// variables (the process environment in production).
pub fn resolve(
    app: &mut App,
    cli: &CommandLineValues,
    env: impl Fn(&str) -> Option<String>,
) -> Result<()> {
    let shown = app.manifest_path.display().to_string();
    for name in cli.values.keys() {
        if !app.variables.contains_key(name) && !cli.skip_undeclared {
            bail!("--variable {name}: {shown} declares no variable \"{name}\" in [variables]");
        }
    }
    let mut values = BTreeMap::new();
    for (name, variable) in &app.variables {
        let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        let value = cli
            .values
            .get(name)
            .cloned()
            .or_else(|| env(&env_name))
            .or_else(|| variable.default.clone());
        match value {
            Some(value) => {
                values.insert(name.clone(), value);
            }
            None if variable.required && cli.skip_undeclared => bail!(
                "{shown}: variable \"{name}\" is required but has no value: \
                 add {name} = \"VALUE\" to the file of [app] variables_file or set {env_name}"
            ),
            None if variable.required => bail!(
                "{shown}: variable \"{name}\" is required but has no value: \
                 pass --variable {name}=VALUE or set {env_name}"
            ),
            None => {}
        }
    }
    let lookup = |name: &str| values.get(name).cloned();
    for component in app.components.values_mut() {
        let place = format!("{shown}: component \"{}\"", component.id);
        for (name, raw) in component.variables.iter_mut() {
            *raw = template::render(raw, lookup)
                .map_err(|e| anyhow::anyhow!("{place}: variables.{name}: {e}"))?;
        }
        for host in component.allowed_outbound_hosts.iter_mut() {
            *host = template::render(host, lookup)
                .map_err(|e| anyhow::anyhow!("{place}: allowed_outbound_hosts: {e}"))?;
        }
    }
    render_triggers(app, &shown, &lookup)
}

/// Renders the templates pub/sub triggers allow (addresses, credentials, topics) and
/// checks the values, which could not be checked before.
fn render_triggers(
    app: &mut App,
    shown: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let render =
        |place: &str, key: &str, value: &mut String, check: fn(&str) -> Result<(), String>| {
            if !template::has_template(value) {
                return Ok(());
            }
            let rendered = template::render(value, lookup)
                .and_then(|v| check(&v).map(|()| v))
                .map_err(|e| anyhow::anyhow!("{shown}: {place}: {key} {value:?}: {e}"))?;
            *value = rendered;
            anyhow::Ok(())
        };
    fn any(_: &str) -> Result<(), String> {
        Ok(())
    }
    for t in &mut app.redis_triggers {
        let place = format!("trigger.redis (id {:?})", t.id);
        render(
            &place,
            "address",
            &mut t.address,
            redis_trigger::check_address,
        )?;
    }
    if let Some(broker) = &mut app.mqtt_broker {
        let place = "application.trigger.mqtt";
        render(
            place,
            "address",
            &mut broker.address,
            mqtt_trigger::check_address,
        )?;
        render(place, "username", &mut broker.username, any)?;
        render(place, "password", &mut broker.password, any)?;
    }
    for t in &mut app.mqtt_triggers {
        let place = format!("trigger.mqtt (id {:?})", t.id);
        render(
            &place,
            "topic",
            &mut t.topic,
            mqtt_trigger::check_topic_filter,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(toml: &str) -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.wasm"), b"\0asm").unwrap();
        let app = super::super::load_str("spin.toml", toml, dir.path()).unwrap();
        (dir, app)
    }

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "v"
[variables]
greeting = { default = "hello" }
api_key = { required = true, secret = true }
host = { default = "example.com" }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
allowed_outbound_hosts = ["https://{{ host }}"]
variables = { greeting = "{{ greeting }}, world", key = "{{ api_key }}" }
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn providers_in_order_and_templates_rendered() {
        let (_dir, mut app) = app(MANIFEST);
        let cli = CommandLineValues::parse(&["api_key=from-cli".into()]).unwrap();
        let env = |name: &str| (name == "SPIN_VARIABLE_HOST").then(|| "env.example".to_string());
        resolve(&mut app, &cli, env).unwrap();
        let c = &app.components["c"];
        assert_eq!(c.variables["greeting"], "hello, world");
        assert_eq!(c.variables["key"], "from-cli");
        assert_eq!(c.allowed_outbound_hosts, vec!["https://env.example"]);
    }

    #[test]
    fn the_command_line_beats_the_environment() {
        let (_dir, mut app) = app(MANIFEST);
        let cli = CommandLineValues::parse(&["api_key=cli".into()]).unwrap();
        resolve(&mut app, &cli, |_| Some("env".into())).unwrap();
        assert_eq!(app.components["c"].variables["key"], "cli");
    }

    #[test]
    fn a_required_variable_without_value_is_named() {
        let (_dir, mut app) = app(MANIFEST);
        let err = resolve(&mut app, &CommandLineValues::default(), no_env).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("\"api_key\" is required"), "{err}");
        assert!(err.contains("SPIN_VARIABLE_API_KEY"), "{err}");
    }

    #[test]
    fn unknown_and_malformed_command_line_values_are_errors() {
        let (_dir, mut app) = app(MANIFEST);
        let cli = CommandLineValues::parse(&["nope=1".into()]).unwrap();
        let err = format!("{:#}", resolve(&mut app, &cli, no_env).unwrap_err());
        assert!(err.contains("no variable \"nope\""), "{err}");
        assert!(CommandLineValues::parse(&["novalue".into()]).is_err());
    }

    /// A service's variables file serves whatever app is installed: a name
    /// this app does not declare is skipped, a declared one is used.
    #[test]
    fn a_service_file_skips_names_the_app_does_not_declare() {
        let (dir, mut app) = app(MANIFEST);
        let file = dir.path().join("service-variables.toml");
        std::fs::write(
            &file,
            "api_key = \"from-file\"\nhost = \"h.example\"\nbroker = \"mqtt://x\"\n",
        )
        .unwrap();
        let values = CommandLineValues::from_service_file(&file).unwrap();
        resolve(&mut app, &values, no_env).unwrap();
        assert_eq!(app.components["c"].variables["key"], "from-file");
    }

    #[test]
    fn values_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("v.json");
        std::fs::write(&json, r#"{"api_key": "j", "port": 8080}"#).unwrap();
        let toml_file = dir.path().join("v.toml");
        std::fs::write(&toml_file, "api_key = \"t\"\n").unwrap();
        let parsed = CommandLineValues::parse(&[
            format!("@{}", json.display()),
            format!("@{}", toml_file.display()),
        ])
        .unwrap();
        assert_eq!(parsed.values["api_key"], "t");
        assert_eq!(parsed.values["port"], "8080");
        let bad = dir.path().join("v.yaml");
        std::fs::write(&bad, "a: b").unwrap();
        assert!(CommandLineValues::parse(&[format!("@{}", bad.display())]).is_err());
    }
}
