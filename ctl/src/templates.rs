//! The app templates `gatewayctl new` writes, embedded in the binary (no network
//! needed to start an app), and how their placeholders are filled.
//!
//! Template files live in `ctl/templates/<id>/`. A placeholder is `%%name%%`: a
//! syntax of its own, because the files are TOML, Rust and WIT, and Spin's manifests
//! already use `{{ name }}` for app variables. Files named `*.tmpl` lose the suffix
//! when written (a `Cargo.toml` with placeholders is not a valid manifest, and tools
//! scanning this repository should not take it for one); `gitignore` becomes
//! `.gitignore`.

use anyhow::{Result, bail};

/// A value a template asks for, beyond the project name.
pub struct Parameter {
    pub name: &'static str,
    pub prompt: &'static str,
    pub default: &'static str,
}

pub struct Template {
    pub id: &'static str,
    pub summary: &'static str,
    pub parameters: &'static [Parameter],
    /// (path written, contents with placeholders)
    pub files: &'static [(&'static str, &'static str)],
    /// Commands to run in the new app's folder before `gatewayd up --build`.
    pub setup: &'static [&'static str],
}

const DESCRIPTION: Parameter = Parameter {
    name: "description",
    prompt: "Description",
    default: "",
};
const HTTP_PATH: Parameter = Parameter {
    name: "http-path",
    prompt: "HTTP path",
    default: "/...",
};

macro_rules! file {
    ($template:literal, $path:literal) => {
        (
            $path,
            include_str!(concat!("../templates/", $template, "/", $path)),
        )
    };
}

/// Every template, in the order `gatewayctl templates` lists them.
pub const TEMPLATES: &[Template] = &[
    Template {
        id: "http-rust",
        summary: "HTTP component in Rust, Spin SDK 7 (WASI 0.3: wasi:http/handler@0.3.0)",
        parameters: &[DESCRIPTION, HTTP_PATH],
        files: &[
            file!("http-rust", "Cargo.toml.tmpl"),
            file!("http-rust", "spin.toml.tmpl"),
            file!("http-rust", "src/lib.rs"),
            file!("http-rust", "gitignore"),
        ],
        setup: RUST_SETUP,
    },
    Template {
        id: "http-rust-wasi02",
        summary: "HTTP component in Rust, Spin SDK 5 (WASI 0.2: wasi:http/incoming-handler@0.2.0)",
        parameters: &[DESCRIPTION, HTTP_PATH],
        files: &[
            file!("http-rust-wasi02", "Cargo.toml.tmpl"),
            file!("http-rust-wasi02", "spin.toml.tmpl"),
            file!("http-rust-wasi02", "src/lib.rs"),
            file!("http-rust-wasi02", "gitignore"),
        ],
        setup: RUST_SETUP,
    },
    Template {
        id: "redis-rust",
        summary: "Redis-triggered component in Rust, Spin SDK 7 (#[redis_subscriber])",
        parameters: &[
            DESCRIPTION,
            Parameter {
                name: "redis-address",
                prompt: "Redis address",
                default: "redis://127.0.0.1:6379",
            },
            Parameter {
                name: "redis-channel",
                prompt: "Redis channel",
                default: "messages",
            },
        ],
        files: &[
            file!("redis-rust", "Cargo.toml.tmpl"),
            file!("redis-rust", "spin.toml.tmpl"),
            file!("redis-rust", "src/lib.rs"),
            file!("redis-rust", "gitignore"),
        ],
        setup: RUST_SETUP,
    },
    Template {
        id: "mqtt-rust",
        summary: "MQTT-triggered component in Rust (wit-bindgen, the MQTT trigger plugin's world)",
        parameters: &[
            DESCRIPTION,
            Parameter {
                name: "mqtt-address",
                prompt: "MQTT broker address",
                default: "mqtt://127.0.0.1:1883",
            },
            Parameter {
                name: "mqtt-topic",
                prompt: "MQTT topic filter",
                default: "sensors/#",
            },
        ],
        files: &[
            file!("mqtt-rust", "Cargo.toml.tmpl"),
            file!("mqtt-rust", "spin.toml.tmpl"),
            file!("mqtt-rust", "src/lib.rs"),
            file!("mqtt-rust", "gitignore"),
            // The world the component implements: the same file the repository's
            // MQTT SDK binds to, so the two cannot drift apart.
            (
                "wit/mqtt-trigger.wit",
                include_str!("../../sdk/mqtt/wit/mqtt-trigger.wit"),
            ),
        ],
        setup: RUST_SETUP,
    },
    Template {
        id: "http-python",
        summary: "HTTP component in Python, Spin Python SDK (componentize-py; WASI 0.3)",
        parameters: &[DESCRIPTION, HTTP_PATH],
        files: &[
            file!("http-python", "spin.toml.tmpl"),
            file!("http-python", "app.py"),
            file!("http-python", "requirements.txt"),
            file!("http-python", "gitignore"),
        ],
        setup: &[
            "python3 -m venv .venv && . .venv/bin/activate",
            "pip install -r requirements.txt",
        ],
    },
    Template {
        id: "http-js",
        summary: "HTTP component in JavaScript, Spin JS build tools (ComponentizeJS; WASI 0.2)",
        parameters: &[DESCRIPTION, HTTP_PATH],
        files: &[
            file!("http-js", "spin.toml.tmpl"),
            file!("http-js", "package.json.tmpl"),
            file!("http-js", "build.mjs"),
            file!("http-js", "src/index.js"),
            file!("http-js", "gitignore"),
        ],
        // The build command installs the packages itself.
        setup: &[],
    },
];

/// Nothing but the target; cargo fetches the crates at the first build.
const RUST_SETUP: &[&str] = &["rustup target add wasm32-wasip2"];

pub fn find(id: &str) -> Result<&'static Template> {
    match TEMPLATES.iter().find(|t| t.id == id) {
        Some(t) => Ok(t),
        None => {
            let ids: Vec<&str> = TEMPLATES.iter().map(|t| t.id).collect();
            bail!(
                "no template \"{id}\"; there are: {} (`gatewayctl templates` describes them)",
                ids.join(", ")
            )
        }
    }
}

/// Where a template file is written, relative to the app's folder.
pub fn output_path(path: &str) -> String {
    let path = path.strip_suffix(".tmpl").unwrap_or(path);
    match path {
        "gitignore" => ".gitignore".to_string(),
        _ => path.to_string(),
    }
}

/// Fills every `%%name%%` in `text` from `values`; a name without a value is an
/// error (a template bug, caught by the tests).
pub fn render(file: &str, text: &str, values: &[(&str, String)]) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("%%") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("%%") else {
            bail!("template file {file}: unclosed %% placeholder");
        };
        let name = &after[..end];
        let Some((_, value)) = values.iter().find(|(n, _)| *n == name) else {
            bail!("template file {file}: no value for placeholder %%{name}%%");
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_refuses_unknown_ones() {
        let values = [("a", "x".to_string()), ("b-c", "y".to_string())];
        assert_eq!(
            render("f", "%%a%%-%%b-c%% {{ v }}", &values).unwrap(),
            "x-y {{ v }}"
        );
        let e = render("f", "%%nope%%", &values).unwrap_err().to_string();
        assert!(e.contains("f") && e.contains("%%nope%%"), "{e}");
        assert!(render("f", "50%% off", &values).is_err());
    }

    #[test]
    fn every_template_renders_with_its_parameters() {
        for t in TEMPLATES {
            let mut values = vec![
                ("project-name", "my-app".to_string()),
                ("crate-name", "my_app".to_string()),
            ];
            values.extend(t.parameters.iter().map(|p| (p.name, p.default.to_string())));
            for (path, text) in t.files {
                let out = render(path, text, &values)
                    .unwrap_or_else(|e| panic!("template {}: {e}", t.id));
                assert!(!out.contains("%%"), "{} {path}", t.id);
            }
            assert!(t.files.iter().any(|(p, _)| output_path(p) == "spin.toml"));
        }
    }
}
