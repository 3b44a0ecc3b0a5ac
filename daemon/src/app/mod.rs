//! The app model: a Spin manifest v2 (`spin.toml`) loaded, validated and resolved into
//! the `App` the engine, executor and triggers consume. Nothing downstream reads the
//! manifest itself, so every check that can be made at load time is made here, with an
//! error that names the file, the place and the problem.
//!
//! Parts: `manifest` (raw serde model), `parse` (TOML -> raw, version check), `resolve`
//! (raw -> `App`; components), `http_trigger`, `redis_trigger`, `mqtt_trigger` (one per
//! trigger type) with `component_ref` (what they share) and `delivery` (pub/sub
//! settings), `route`, `files`, `names`, `template`, `diag` (error wording).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod build;
mod component_ref;
pub mod delivery;
mod diag;
mod files;
mod http_trigger;
pub mod manifest;
pub mod mqtt_trigger;
pub mod names;
mod parse;
pub mod redis_trigger;
mod resolve;
pub mod route;
pub mod template;
pub mod variables;

pub use delivery::Delivery;
pub use route::{Route, Segment};

/// File name looked up when `load` is given a folder.
pub const MANIFEST_FILE: &str = "spin.toml";

#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub authors: Vec<String>,
    /// Absolute path of the manifest.
    pub manifest_path: PathBuf,
    /// Absolute, canonical folder of the manifest; relative paths resolve here.
    pub base_dir: PathBuf,
    /// `[application.trigger.http] base`: starts with `/`, no trailing `/` unless it is `/`.
    pub http_base: String,
    pub variables: BTreeMap<String, AppVariable>,
    pub components: BTreeMap<String, Component>,
    /// In manifest order.
    pub http_triggers: Vec<HttpTrigger>,
    /// In manifest order.
    pub redis_triggers: Vec<RedisTrigger>,
    /// `[application.trigger.mqtt]`: present if there are MQTT triggers.
    pub mqtt_broker: Option<MqttBroker>,
    /// In manifest order.
    pub mqtt_triggers: Vec<MqttTrigger>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVariable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub id: String,
    /// Absolute path of an existing file.
    pub source: PathBuf,
    pub description: Option<String>,
    pub environment: BTreeMap<String, String>,
    /// Sorted by destination, no duplicates.
    pub files: Vec<FileMount>,
    /// As written (templates kept); entries without templates are known to parse.
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
    /// Raw templates such as `"{{ api_key }}"`, referencing declared app variables only.
    pub variables: BTreeMap<String, String>,
    /// True if the component was written inline in a trigger (its id is generated).
    pub inline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    /// Absolute host path of a regular file inside the app folder.
    pub source: PathBuf,
    /// Absolute guest path, e.g. `/static/a.txt`.
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    pub id: String,
    pub route: Route,
    pub handler: HttpHandler,
}

/// `[[trigger.redis]]`: messages on one channel go to one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTrigger {
    pub id: String,
    pub component: String,
    pub channel: String,
    /// The trigger's `address`, else the app's; templates rendered by `variables::resolve`.
    pub address: String,
    pub dead_letter_channel: Option<String>,
    pub delivery: Delivery,
}

/// `[application.trigger.mqtt]`: the broker every MQTT trigger subscribes at.
/// Templates in these strings are rendered by `variables::resolve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttBroker {
    pub address: String,
    pub username: String,
    pub password: String,
    pub keep_alive: Duration,
    /// Prefix of each trigger's client id (`<prefix>-<trigger id>`).
    pub client_id: String,
}

/// `[[trigger.mqtt]]`: messages matching one topic filter go to one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTrigger {
    pub id: String,
    pub component: String,
    /// A topic filter (`+` and `#` wildcards); templates rendered by `variables::resolve`.
    pub topic: String,
    /// 0, 1 or 2.
    pub qos: u8,
    pub dead_letter_topic: Option<String>,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpHandler {
    /// A component id, present in `App::components`.
    Component(String),
    Static(StaticResponse),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticResponse {
    pub status: u16,
    /// In the order written; names and values are valid HTTP.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Loads and validates an app from a `spin.toml` file or the folder that holds one.
pub fn load(path: &Path) -> anyhow::Result<App> {
    let file = ManifestFile::read(path)?;
    let app = from_str(&file.ctx, &file.text, file.path, file.base_dir)?;
    tracing::debug!(
        app = %app.name,
        manifest = %app.manifest_path.display(),
        components = app.components.len(),
        http_triggers = app.http_triggers.len(),
        "app loaded"
    );
    Ok(app)
}

/// A manifest read from disk, for [`load`] and [`build::plan`].
struct ManifestFile {
    /// Names the file in errors as the user gave it.
    ctx: diag::Ctx,
    text: String,
    /// Absolute and canonical, and its folder.
    path: PathBuf,
    base_dir: PathBuf,
}

impl ManifestFile {
    /// Reads `path`: a manifest file, or the folder that holds `spin.toml`.
    fn read(path: &Path) -> anyhow::Result<ManifestFile> {
        let manifest = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        if !manifest.is_file() {
            anyhow::bail!(
                "{}: no {MANIFEST_FILE} found (pass a {MANIFEST_FILE} file or the folder that holds one)",
                path.display()
            );
        }
        let ctx = diag::Ctx::new(manifest.display().to_string());
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| ctx.err_file(format_args!("cannot read: {e}")))?;
        let path = manifest
            .canonicalize()
            .map_err(|e| ctx.err_file(format_args!("cannot resolve path: {e}")))?;
        let base_dir = path
            .parent()
            .ok_or_else(|| ctx.err_file("has no parent folder"))?
            .to_path_buf();
        Ok(ManifestFile {
            ctx,
            text,
            path,
            base_dir,
        })
    }
}

/// Parses manifest text as if it were the file `shown` in `base_dir` (absolute,
/// canonical). For callers that already hold the text, such as a bundle reader or a fuzzer.
pub fn load_str(shown: &str, text: &str, base_dir: &Path) -> anyhow::Result<App> {
    let ctx = diag::Ctx::new(shown);
    from_str(
        &ctx,
        text,
        base_dir.join(MANIFEST_FILE),
        base_dir.to_path_buf(),
    )
}

fn from_str(
    ctx: &diag::Ctx,
    text: &str,
    manifest_path: PathBuf,
    base_dir: PathBuf,
) -> anyhow::Result<App> {
    let raw = parse::parse(ctx, text)?;
    resolve::resolve(ctx, raw, manifest_path, base_dir)
}

impl App {
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.get(id)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pubsub;
