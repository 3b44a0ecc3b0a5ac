//! Raw serde model of a Spin manifest v2 (`spin.toml`), exactly as written: no
//! defaults applied, no paths resolved, no cross-references checked. `super::resolve`
//! turns it into the validated `App`.
//!
//! Unknown keys are errors (`deny_unknown_fields`), as in Spin, so a typo never silently
//! drops a setting. Keys we recognise but do not support are still parsed (as opaque
//! values) so that the error can say "not supported" instead of "unknown field".

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Checked on the untyped table before this struct is parsed (see `super::parse`), so a
    /// v1 manifest gets "v1 is not supported" rather than a list of unknown fields.
    pub spin_manifest_version: i64,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    /// Deployment-target compatibility claims (`spin-up:3.3`); accepted and ignored.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub trigger: AppTriggers,
    /// `[application.tool.<name>]`: configuration for external tools; ignored.
    #[serde(default)]
    pub tool: toml::Table,
}

/// `[application.trigger.<type>]`: trigger-wide settings.
#[derive(Debug, Default, Deserialize)]
pub struct AppTriggers {
    pub http: Option<AppHttpTrigger>,
    pub redis: Option<AppRedisTrigger>,
    pub mqtt: Option<AppMqttTrigger>,
    /// Settings of trigger types we do not run (yet); accepted so that a manifest
    /// written for Spin loads, and stored nowhere.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppHttpTrigger {
    pub base: Option<String>,
}

/// `[application.trigger.redis]`, as Spin has it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRedisTrigger {
    pub address: Option<String>,
}

/// `[application.trigger.mqtt]`: the keys of Spin's MQTT trigger plugin, plus
/// `client_id` (ours: the prefix of the persistent sessions' client ids).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppMqttTrigger {
    pub address: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// Seconds; the plugin writes it as a string, an integer is accepted too.
    pub keep_alive_interval: Option<toml::Value>,
    pub client_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    pub description: Option<String>,
}

/// `[[trigger.<type>]]` arrays. Types we do not run land in `other` and are
/// reported as unsupported.
#[derive(Debug, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    #[serde(default)]
    pub redis: Vec<RedisTrigger>,
    #[serde(default)]
    pub mqtt: Vec<MqttTrigger>,
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    pub id: Option<String>,
    pub route: RouteSpec,
    pub component: Option<ComponentRef>,
    pub static_response: Option<StaticResponse>,
    /// `{ type = "http" | "spin" | "wagi", ... }`; checked in `resolve`.
    pub executor: Option<toml::Table>,
    /// Middleware chains: not supported.
    pub components: Option<toml::Value>,
    pub dependencies: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTrigger {
    pub id: Option<String>,
    pub channel: String,
    pub component: ComponentRef,
    pub address: Option<String>,
    /// Where a message goes once every attempt failed (ours).
    pub dead_letter_channel: Option<String>,
    /// Messages handled at once by this trigger (ours).
    pub concurrency: Option<i64>,
    /// Tries per message; a failed handler is retried until this many (ours).
    pub max_attempts: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTrigger {
    pub id: Option<String>,
    pub component: ComponentRef,
    pub topic: String,
    /// "0", "1" or "2" in the plugin's manifests; an integer is accepted too.
    pub qos: Option<toml::Value>,
    /// Where a message goes once every attempt failed (ours).
    pub dead_letter_topic: Option<String>,
    /// Messages handled at once by this trigger (ours).
    pub concurrency: Option<i64>,
    /// Tries per message; a failed handler is retried until this many (ours).
    pub max_attempts: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSpec {
    Path(String),
    Private,
}

#[derive(Debug)]
pub enum ComponentRef {
    Id(String),
    Inline(Box<Component>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponse {
    pub status_code: Option<u16>,
    #[serde(default)]
    pub headers: OrderedStrings,
    pub body: Option<String>,
}

/// A string-to-string table in document order (headers are sent in the order written).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrderedStrings(pub Vec<(String, String)>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub source: Source,
    pub description: Option<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<FilesEntry>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Deprecated by Spin in favour of `allowed_outbound_hosts`; rejected with a hint.
    pub allowed_http_hosts: Option<toml::Value>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Used by `spin build` only.
    pub build: Option<Build>,
    /// Configuration for external tools; ignored.
    pub tool: Option<toml::Value>,
    // Recognised but not supported: parsed opaquely so the error can name them.
    pub sqlite_databases: Option<toml::Value>,
    pub ai_models: Option<toml::Value>,
    pub dependencies: Option<toml::Value>,
    pub dependencies_inherit_configuration: Option<toml::Value>,
    pub targets: Option<toml::Value>,
    pub profile: Option<toml::Value>,
}

impl Component {
    /// Keys that are valid Spin but that gatewayd does not implement, if present.
    pub fn unsupported_keys(&self) -> impl Iterator<Item = &'static str> {
        [
            ("sqlite_databases", self.sqlite_databases.is_some()),
            ("ai_models", self.ai_models.is_some()),
            ("dependencies", self.dependencies.is_some()),
            (
                "dependencies_inherit_configuration",
                self.dependencies_inherit_configuration.is_some(),
            ),
            ("targets", self.targets.is_some()),
            ("profile", self.profile.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
    }
}

#[derive(Debug)]
pub enum Source {
    Local(String),
    /// `{ url, digest }` or `{ registry, package, version }`: not supported, kept for the error.
    Remote(toml::Table),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesEntry {
    Glob(String),
    Mapping { source: String, destination: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub command: Command,
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Debug)]
pub enum Command {
    One(String),
    Many(Vec<String>),
}

// ---- "string or table" values ------------------------------------------------------
//
// Written by hand rather than with `#[serde(untagged)]`: untagged enums buffer the value
// and replace every inner error (an unknown key in an inline component, say) with "data
// did not match any variant", losing both the real message and its position.

trait StrOrTable: Sized {
    const EXPECTING: &'static str;
    fn from_str<E: de::Error>(s: &str) -> Result<Self, E>;
    fn from_table<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

struct StrOrTableVisitor<T>(PhantomData<T>);

impl<'de, T: StrOrTable> Visitor<'de> for StrOrTableVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        T::from_str(s)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_table(map)
    }
}

fn table<'de, A: MapAccess<'de>, T: Deserialize<'de>>(map: A) -> Result<T, A::Error> {
    T::deserialize(de::value::MapAccessDeserializer::new(map))
}

macro_rules! deserialize_via_str_or_table {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(StrOrTableVisitor::<$t>(PhantomData))
            }
        }
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateRoute {
    private: bool,
}

impl StrOrTable for RouteSpec {
    const EXPECTING: &'static str = "a route string such as \"/hello/...\" or { private = true }";
    fn from_str<E: de::Error>(s: &str) -> Result<Self, E> {
        Ok(RouteSpec::Path(s.to_string()))
    }
    fn from_table<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let p: PrivateRoute = table(map)?;
        if p.private {
            Ok(RouteSpec::Private)
        } else {
            // `{ private = false }` would be a route with no path at all.
            Err(de::Error::custom(
                "a route table must be { private = true }; otherwise give a path string",
            ))
        }
    }
}
deserialize_via_str_or_table!(RouteSpec);

impl StrOrTable for ComponentRef {
    const EXPECTING: &'static str = "a component id or an inline component table";
    fn from_str<E: de::Error>(s: &str) -> Result<Self, E> {
        Ok(ComponentRef::Id(s.to_string()))
    }
    fn from_table<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Ok(ComponentRef::Inline(Box::new(table(map)?)))
    }
}
deserialize_via_str_or_table!(ComponentRef);

impl StrOrTable for Source {
    const EXPECTING: &'static str = "a path to a .wasm file";
    fn from_str<E: de::Error>(s: &str) -> Result<Self, E> {
        Ok(Source::Local(s.to_string()))
    }
    fn from_table<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Ok(Source::Remote(table(map)?))
    }
}
deserialize_via_str_or_table!(Source);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mapping {
    source: String,
    destination: String,
}

impl StrOrTable for FilesEntry {
    const EXPECTING: &'static str = "a glob string or { source = \"...\", destination = \"/...\" }";
    fn from_str<E: de::Error>(s: &str) -> Result<Self, E> {
        Ok(FilesEntry::Glob(s.to_string()))
    }
    fn from_table<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let m: Mapping = table(map)?;
        Ok(FilesEntry::Mapping {
            source: m.source,
            destination: m.destination,
        })
    }
}
deserialize_via_str_or_table!(FilesEntry);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command string or a list of command strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Command, E> {
                Ok(Command::One(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut all = Vec::new();
                while let Some(c) = seq.next_element::<String>()? {
                    all.push(c);
                }
                Ok(Command::Many(all))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for OrderedStrings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedStrings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedStrings, A::Error> {
                let mut all = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    all.push((k, v));
                }
                Ok(OrderedStrings(all))
            }
        }
        d.deserialize_map(V)
    }
}
