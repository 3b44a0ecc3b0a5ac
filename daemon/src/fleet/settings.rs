//! `[fleet]` in gatewayd.toml: the registry tag the gateway follows for its
//! app, where it reports its status and the name it reports under. Parsed
//! here rather than in `config` so the fleet's keys and their checks sit
//! beside the code that uses them.

use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::Deserialize;

use super::reference::OciReference;

/// `[fleet]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    source: Option<String>,
    source_username: Option<String>,
    source_password: Option<String>,
    poll_interval: Option<String>,
    #[serde(default)]
    insecure: bool,
    status_broker: Option<String>,
    gateway_id: Option<String>,
    status_username: Option<String>,
    status_password: Option<String>,
    status_interval: Option<String>,
}

/// `[fleet]`: each part is off unless configured.
#[derive(Debug, Clone, Default)]
pub struct FleetSettings {
    pub source: Option<SourceSettings>,
    pub status: Option<StatusSettings>,
}

/// The registry tag the gateway follows.
#[derive(Clone)]
pub struct SourceSettings {
    pub reference: OciReference,
    /// Plain HTTP (a lab registry).
    pub insecure: bool,
    pub username: String,
    pub password: String,
    /// How often the tag is checked (each check is one small request).
    pub poll_interval: Duration,
}

impl std::fmt::Debug for SourceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is a secret: never printed.
        f.debug_struct("SourceSettings")
            .field("reference", &self.reference)
            .field("insecure", &self.insecure)
            .field("username", &self.username)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

/// Where and how the gateway publishes its status.
#[derive(Clone)]
pub struct StatusSettings {
    /// As configured, for messages (credentials are separate keys).
    pub broker: String,
    /// `mqtt` or `mqtts`.
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// The `<gateway-id>` of `gatewayd/<gateway-id>/status`.
    pub gateway_id: String,
    /// How often the status is republished when nothing changed (uptime
    /// and the last minute's activity move on).
    pub interval: Duration,
}

impl std::fmt::Debug for StatusSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is a secret: never printed.
        f.debug_struct("StatusSettings")
            .field("broker", &self.broker)
            .field("username", &self.username)
            .field("gateway_id", &self.gateway_id)
            .field("interval", &self.interval)
            .finish()
    }
}

impl RawFleet {
    /// `key` names a key for messages (`FILE: fleet.KEY`).
    pub fn parse(self, key: &dyn Fn(&str) -> String) -> Result<FleetSettings> {
        let source = self.source(key)?;
        Ok(FleetSettings {
            source,
            status: self.status(key)?,
        })
    }

    fn source(&self, key: &dyn Fn(&str) -> String) -> Result<Option<SourceSettings>> {
        let Some(source) = self.source.as_deref().filter(|s| !s.is_empty()) else {
            let stray = [
                ("source_username", self.source_username.is_some()),
                ("poll_interval", self.poll_interval.is_some()),
                ("insecure", self.insecure),
            ];
            if let Some((name, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(anyhow!(
                    "{}: set only with fleet.source, which is not set",
                    key(&format!("fleet.{name}"))
                ));
            }
            return Ok(None);
        };
        if !cfg!(feature = "oci") {
            return Err(anyhow!(
                "{}: this gatewayd was built without registry updates (cargo feature \"oci\"); \
                 push bundles with `gatewayctl push`, or install a build with the feature",
                key("fleet.source")
            ));
        }
        let reference = OciReference::parse(source)
            .map_err(|e| anyhow!("{}: {source:?}: {e}", key("fleet.source")))?;
        let poll_interval = match self.poll_interval.as_deref() {
            None => Duration::from_secs(300),
            Some(text) => crate::cli::parse_duration(text)
                .map_err(|e| anyhow!("{}: {e}", key("fleet.poll_interval")))?,
        };
        if poll_interval < Duration::from_secs(1) {
            return Err(anyhow!("{}: at least 1s", key("fleet.poll_interval")));
        }
        Ok(Some(SourceSettings {
            reference,
            insecure: self.insecure,
            username: self.source_username.clone().unwrap_or_default(),
            password: self.source_password.clone().unwrap_or_default(),
            poll_interval,
        }))
    }

    fn status(self, key: &dyn Fn(&str) -> String) -> Result<Option<StatusSettings>> {
        let Some(broker) = self.status_broker.filter(|b| !b.is_empty()) else {
            let stray = [
                ("gateway_id", self.gateway_id.is_some()),
                ("status_username", self.status_username.is_some()),
                ("status_interval", self.status_interval.is_some()),
            ];
            if let Some((name, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(anyhow!(
                    "{}: set only with fleet.status_broker, which is not set",
                    key(&format!("fleet.{name}"))
                ));
            }
            return Ok(None);
        };
        let (scheme, host, port) = parse_broker(&broker)
            .map_err(|e| anyhow!("{}: {broker:?}: {e}", key("fleet.status_broker")))?;
        let gateway_id = match self.gateway_id {
            Some(id) => id,
            None => default_gateway_id().ok_or_else(|| {
                anyhow!(
                    "{}: no /etc/machine-id or host name to name this gateway by: set one",
                    key("fleet.gateway_id")
                )
            })?,
        };
        check_gateway_id(&gateway_id)
            .map_err(|e| anyhow!("{}: {gateway_id:?}: {e}", key("fleet.gateway_id")))?;
        let interval = match self.status_interval.as_deref() {
            None => Duration::from_secs(60),
            Some(text) => crate::cli::parse_duration(text)
                .map_err(|e| anyhow!("{}: {e}", key("fleet.status_interval")))?,
        };
        if interval < Duration::from_secs(1) {
            return Err(anyhow!("{}: at least 1s", key("fleet.status_interval")));
        }
        Ok(Some(StatusSettings {
            broker,
            scheme,
            host,
            port,
            username: self.status_username.unwrap_or_default(),
            password: self.status_password.unwrap_or_default(),
            gateway_id,
            interval,
        }))
    }
}

/// `mqtt://host[:port]` or `mqtts://...` into its parts.
pub fn parse_broker(address: &str) -> Result<(String, String, u16), String> {
    let uri: http::Uri = address
        .parse()
        .map_err(|e| format!("not an address such as mqtt://broker:1883 ({e})"))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if scheme != "mqtt" && scheme != "mqtts" {
        return Err("the scheme must be mqtt:// or mqtts://".into());
    }
    let host = uri.host().filter(|h| !h.is_empty()).ok_or("no host")?;
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err("a broker address has no path".into());
    }
    if address.contains('@') {
        return Err(
            "credentials go in fleet.status_username and fleet.status_password, not the address"
                .into(),
        );
    }
    let port = uri
        .port_u16()
        .unwrap_or(crate::tls::mqtt_default_port(scheme));
    Ok((scheme.to_string(), host.to_string(), port))
}

/// One topic level, so `gatewayd/+/status` finds it: no `/`, `+` or `#`.
fn check_gateway_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > 128 {
        return Err("must be 1 to 128 characters");
    }
    if id
        .chars()
        .any(|c| matches!(c, '/' | '+' | '#') || c.is_control() || c.is_whitespace())
    {
        return Err("must be one MQTT topic level: no '/', '+', '#', spaces or control characters");
    }
    Ok(())
}

/// The machine id systemd gives every installation, else the host name.
fn default_gateway_id() -> Option<String> {
    ["/etc/machine-id", "/proc/sys/kernel/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_string())
        .find(|id| check_gateway_id(id).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &str) -> Result<FleetSettings> {
        let raw: RawFleet = toml::from_str(text).unwrap();
        raw.parse(&|name| format!("gatewayd.toml: {name}"))
    }

    fn parse(text: &str) -> Result<Option<StatusSettings>> {
        parse_all(text).map(|f| f.status)
    }

    #[test]
    #[cfg(not(feature = "oci"))]
    fn a_source_is_refused_by_a_build_without_the_registry_client() {
        let error = parse_all("source = \"oci://127.0.0.1:5000/hello:stable\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.starts_with("gatewayd.toml: fleet.source: this gatewayd was built without"),
            "{error}"
        );
        assert!(parse_all("").unwrap().source.is_none());
    }

    #[test]
    #[cfg(feature = "oci")]
    fn source_settings_read_with_defaults() {
        let f =
            parse_all("source = \"oci://127.0.0.1:5000/hello:stable\"\ninsecure = true").unwrap();
        let source = f.source.unwrap();
        assert_eq!(source.reference.tag, "stable");
        assert!(source.insecure);
        assert_eq!(source.poll_interval, Duration::from_secs(300));
        for (text, expected) in [
            (
                "poll_interval = \"1m\"",
                "fleet.poll_interval: set only with fleet.source",
            ),
            (
                "source = \"oci://r/x@sha256:1\"",
                "fleet.source: \"oci://r/x@sha256:1\": a digest",
            ),
            (
                "source = \"oci://r/x:1\"\npoll_interval = \"0s\"",
                "fleet.poll_interval: at least 1s",
            ),
        ] {
            let error = parse_all(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn status_settings_read_with_defaults() {
        let s = parse("status_broker = \"mqtts://broker.lan\"\ngateway_id = \"gw-7\"")
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.scheme.as_str(), s.host.as_str(), s.port),
            ("mqtts", "broker.lan", 8883)
        );
        assert_eq!(s.gateway_id, "gw-7");
        assert_eq!(s.interval, Duration::from_secs(60));
        assert!(parse("").unwrap().is_none());
        let id = parse("status_broker = \"mqtt://127.0.0.1:1884\"")
            .unwrap()
            .unwrap()
            .gateway_id;
        assert!(check_gateway_id(&id).is_ok(), "{id}");
    }

    #[test]
    fn bad_fleet_keys_are_named() {
        for (text, expected) in [
            (
                "gateway_id = \"x\"",
                "fleet.gateway_id: set only with fleet.status_broker",
            ),
            (
                "status_broker = \"http://b\"",
                "fleet.status_broker: \"http://b\": the scheme",
            ),
            (
                "status_broker = \"mqtt://u:p@b\"",
                "credentials go in fleet.status_username",
            ),
            (
                "status_broker = \"mqtt://b\"\ngateway_id = \"a/b\"",
                "fleet.gateway_id: \"a/b\": must be one MQTT topic level",
            ),
            (
                "status_broker = \"mqtt://b\"\nstatus_interval = \"10ms\"",
                "fleet.status_interval: at least 1s",
            ),
        ] {
            let error = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
