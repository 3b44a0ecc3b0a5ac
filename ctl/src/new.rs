//! `gatewayctl new` and `gatewayctl templates`: start an app from an embedded
//! template, as `spin new` does.
//!
//! Everything is checked and rendered before the first file is written, so a bad
//! name or value leaves nothing behind; an existing, non-empty folder is never
//! written into.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::templates::{self, Template};

/// Prints every template with its one-line summary.
pub fn list() -> Result<()> {
    let width = templates::TEMPLATES
        .iter()
        .map(|t| t.id.len())
        .max()
        .unwrap_or(0);
    for t in templates::TEMPLATES {
        println!("{:width$}  {}", t.id, t.summary);
    }
    Ok(())
}

pub struct NewOptions<'a> {
    pub template: &'a str,
    pub name: &'a str,
    /// Default: a folder named like the app, in the current folder.
    pub output: Option<&'a Path>,
    /// `name=value` for the template's parameters.
    pub values: &'a [String],
    /// Take the defaults of parameters not given instead of asking.
    pub accept_defaults: bool,
}

pub fn run(options: &NewOptions<'_>) -> Result<()> {
    let template = templates::find(options.template)?;
    let name = options.name;
    gatewayd::app::names::check_kebab(name)
        .map_err(|e| anyhow::anyhow!("app name {name:?}: {e}; it names the component too"))?;
    let dir = options
        .output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name));
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} already exists and is not empty; choose another name or --output",
            dir.display()
        );
    }

    let values = values(template, name, options.values, options.accept_defaults)?;
    let mut files = Vec::new();
    for (path, text) in template.files {
        files.push((
            templates::output_path(path),
            templates::render(path, text, &values)?,
        ));
    }
    for (path, text) in &files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    println!(
        "Created app \"{name}\" in {} from template {}. Next:\n  cd {}",
        dir.display(),
        template.id,
        dir.display()
    );
    for command in template.setup {
        println!("  {command}");
    }
    println!("  gatewayd up --build");
    Ok(())
}

/// The placeholder values: the name in its two spellings, then each parameter from
/// `--value`, else asked for on a terminal, else its default.
fn values(
    template: &Template,
    name: &str,
    given: &[String],
    accept_defaults: bool,
) -> Result<Vec<(&'static str, String)>> {
    let mut given_values = Vec::new();
    for entry in given {
        let Some((key, value)) = entry.split_once('=') else {
            bail!("--value {entry:?}: expected NAME=VALUE");
        };
        let Some(parameter) = template.parameters.iter().find(|p| p.name == key) else {
            let known: Vec<&str> = template.parameters.iter().map(|p| p.name).collect();
            bail!(
                "--value {key}: template {} has no such parameter; it has: {}",
                template.id,
                known.join(", ")
            );
        };
        given_values.push((parameter.name, value.to_string()));
    }
    let ask = !accept_defaults && std::io::stdin().is_terminal();
    let mut values = vec![
        ("project-name", name.to_string()),
        ("crate-name", name.replace('-', "_")),
    ];
    for parameter in template.parameters {
        let value = match given_values.iter().find(|(n, _)| *n == parameter.name) {
            Some((_, v)) => v.clone(),
            None if ask => prompt(parameter.prompt, parameter.default)?,
            None => parameter.default.to_string(),
        };
        check_value(parameter.name, &value)?;
        values.push((parameter.name, value));
    }
    Ok(values)
}

/// Values land inside TOML strings, unescaped: refuse what would break them.
fn check_value(name: &str, value: &str) -> Result<()> {
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '"' | '\\') || c.is_control())
    {
        bail!("--value {name}: {c:?} is not allowed in a template value");
    }
    if name == "http-path" && !value.starts_with('/') {
        bail!("--value http-path: {value:?} must start with / (e.g. /api/...)");
    }
    Ok(())
}

fn prompt(question: &str, default: &str) -> Result<String> {
    print!("{question} [{default}]: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim();
    Ok(if line.is_empty() { default } else { line }.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_in(dir: &Path, template: &str, name: &str, values: &[&str]) -> Result<()> {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        run(&NewOptions {
            template,
            name,
            output: Some(dir),
            values: &values,
            accept_defaults: true,
        })
    }

    #[test]
    fn writes_a_loadable_manifest_with_the_values_given() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("app");
        new_in(&dir, "redis-rust", "my-sub", &["redis-channel=jobs"]).unwrap();
        let manifest = std::fs::read_to_string(dir.join("spin.toml")).unwrap();
        assert!(manifest.contains("channel = \"jobs\""), "{manifest}");
        assert!(
            manifest.contains("address = \"redis://127.0.0.1:6379\""),
            "{manifest}"
        );
        assert!(manifest.contains("release/my_sub.wasm"), "{manifest}");
        assert!(dir.join(".gitignore").is_file() && dir.join("Cargo.toml").is_file());
        // The manifest is valid once its component exists.
        let wasm = dir.join("target/wasm32-wasip2/release/my_sub.wasm");
        std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
        std::fs::write(&wasm, b"").unwrap();
        let app = gatewayd::app::load(&dir).unwrap();
        assert_eq!(app.redis_triggers[0].channel, "jobs");
        let plan = gatewayd::app::build::plan(&dir).unwrap();
        assert_eq!(plan.steps[0].component, "my-sub");
    }

    #[test]
    fn bad_input_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("app");
        let cases = [
            ("http-rust", "My App", &[][..], "kebab-case"),
            ("http-go", "a", &[][..], "no template \"http-go\""),
            (
                "http-rust",
                "a",
                &["route=/x"][..],
                "has no such parameter; it has: description, http-path",
            ),
            ("http-rust", "a", &["http-path=x"][..], "must start with /"),
            (
                "http-rust",
                "a",
                &["description=say \"hi\""][..],
                "not allowed",
            ),
        ];
        for (template, name, values, expected) in cases {
            let e = new_in(&dir, template, name, values)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{e}");
            assert!(!dir.exists(), "{template} {name} {values:?} wrote files");
        }
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("keep"), "mine").unwrap();
        let e = new_in(&dir, "http-rust", "a", &[]).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "mine");
    }
}
