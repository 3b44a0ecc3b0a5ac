//! `[application.trigger.mqtt]` and `[[trigger.mqtt]]` (the keys of Spin's MQTT trigger
//! plugin, plus ours: `client_id`, `dead_letter_topic`, delivery settings) -> the broker
//! settings and `MqttTrigger`s. The address, credentials and topics may hold
//! `{{ variable }}` templates; those are checked once rendered (`check_address`,
//! `check_topic_filter`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::diag::Ctx;
use super::{
    AppVariable, Component, MqttBroker, MqttTrigger, component_ref, delivery, manifest, template,
};

const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30);
const PLACE: &str = "application.trigger.mqtt";

pub fn resolve(
    ctx: &Ctx,
    app_name: &str,
    app: Option<manifest::AppMqttTrigger>,
    raw: Vec<manifest::MqttTrigger>,
    components: &mut BTreeMap<String, Component>,
    base_dir: &Path,
    variables: &BTreeMap<String, AppVariable>,
) -> Result<(Option<MqttBroker>, Vec<MqttTrigger>)> {
    let broker = match app {
        Some(app) => Some(broker(ctx, app_name, app, variables)?),
        None if raw.is_empty() => None,
        None => {
            return Err(ctx.err(
                "trigger.mqtt",
                "MQTT triggers need an [application.trigger.mqtt] table with the broker's `address`",
            ));
        }
    };
    let ids = component_ref::trigger_ids(
        ctx,
        "mqtt",
        raw.iter().map(|t| (t.id.as_ref(), Some(&t.component))),
    )?;
    let mut out = Vec::with_capacity(raw.len());
    for (i, (t, id)) in raw.into_iter().zip(ids).enumerate() {
        let place = format!("trigger.mqtt[{i}] (id {id:?})");
        let topic = t.topic;
        if template::has_template(&topic) {
            template::check_refs(&topic, variables)
        } else {
            check_topic_filter(&topic)
        }
        .map_err(|e| ctx.err(&place, format_args!("topic {topic:?}: {e}")))?;
        let qos = match &t.qos {
            None => {
                return Err(ctx.err(&place, "`qos` is missing: give \"0\", \"1\" or \"2\""));
            }
            Some(value) => qos(value).map_err(|e| ctx.err(&place, e))?,
        };
        if let Some(dead) = &t.dead_letter_topic {
            check_topic_name(dead)
                .map_err(|e| ctx.err(&place, format_args!("dead_letter_topic {dead:?}: {e}")))?;
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
        out.push(MqttTrigger {
            id,
            component,
            topic,
            qos,
            dead_letter_topic: t.dead_letter_topic,
            delivery,
        });
    }
    Ok((broker, out))
}

fn broker(
    ctx: &Ctx,
    app_name: &str,
    app: manifest::AppMqttTrigger,
    variables: &BTreeMap<String, AppVariable>,
) -> Result<MqttBroker> {
    let address = app.address;
    if template::has_template(&address) {
        template::check_refs(&address, variables)
    } else {
        check_address(&address)
    }
    .map_err(|e| ctx.err(PLACE, format_args!("address {address:?}: {e}")))?;
    for (key, value) in [("username", &app.username), ("password", &app.password)] {
        template::check_refs(value, variables)
            .map_err(|e| ctx.err(PLACE, format_args!("{key}: {e}")))?;
    }
    let keep_alive = match &app.keep_alive_interval {
        None => DEFAULT_KEEP_ALIVE,
        Some(value) => keep_alive(value).map_err(|e| ctx.err(PLACE, e))?,
    };
    let client_id = match app.client_id {
        Some(id) if id.is_empty() || id.len() > 128 => {
            return Err(ctx.err(PLACE, "client_id must be 1 to 128 bytes"));
        }
        Some(id) => id,
        None => format!("gatewayd-{app_name}"),
    };
    Ok(MqttBroker {
        address,
        username: app.username,
        password: app.password,
        keep_alive,
        client_id,
    })
}

/// The plugin writes numbers as strings (`qos = "1"`); plain integers are accepted too.
fn integer(value: &toml::Value) -> Option<i64> {
    match value {
        toml::Value::Integer(n) => Some(*n),
        toml::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn qos(value: &toml::Value) -> Result<u8, String> {
    match integer(value) {
        Some(n @ 0..=2) => Ok(n as u8),
        _ => Err(format!("qos = {value}: must be \"0\", \"1\" or \"2\"")),
    }
}

fn keep_alive(value: &toml::Value) -> Result<Duration, String> {
    match integer(value) {
        Some(n @ 5..=65535) => Ok(Duration::from_secs(n as u64)),
        _ => Err(format!(
            "keep_alive_interval = {value}: must be a number of seconds from 5 to 65535"
        )),
    }
}

/// `mqtt://host[:port]` (port 1883 by default) or `mqtts://host[:port]` (TLS, 8883).
pub fn check_address(address: &str) -> Result<(), String> {
    let uri: http::Uri = address
        .parse()
        .map_err(|e| format!("not a URL ({e}); expected mqtt://host:port"))?;
    if !matches!(uri.scheme_str(), Some("mqtt" | "mqtts")) {
        return Err("expected an mqtt://host:port or mqtts://host:port address".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

/// An MQTT topic filter: levels split by `/`; `+` is a whole level, `#` a whole last level.
pub fn check_topic_filter(filter: &str) -> Result<(), String> {
    check_topic_common(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("`#` must be a whole level and the last one (e.g. \"a/#\")".into());
        }
        if level.contains('+') && *level != "+" {
            return Err("`+` must be a whole level (e.g. \"a/+/c\")".into());
        }
    }
    Ok(())
}

/// A topic to publish on: no wildcards.
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    check_topic_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err("a topic to publish on cannot hold the wildcards `+` or `#`".into());
    }
    Ok(())
}

fn check_topic_common(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("must not be empty".into());
    }
    if topic.len() > 65535 {
        return Err("is longer than MQTT's 65535 bytes".into());
    }
    if topic.contains('\0') {
        return Err("must not contain NUL".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters() {
        for ok in ["a", "a/b", "a/+/c", "+", "#", "a/#", "+/+/#", "/a"] {
            assert!(check_topic_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "a+/b", "a/b+", "#/a"] {
            assert!(check_topic_filter(bad).is_err(), "{bad}");
        }
        assert!(check_topic_name("dead/letters").is_ok());
        assert!(check_topic_name("dead/+").is_err());
    }

    #[test]
    fn numbers_as_strings_or_integers() {
        assert_eq!(qos(&toml::Value::String("1".into())), Ok(1));
        assert_eq!(qos(&toml::Value::Integer(2)), Ok(2));
        assert!(qos(&toml::Value::String("3".into())).is_err());
        assert!(qos(&toml::Value::String("one".into())).is_err());
        assert_eq!(
            keep_alive(&toml::Value::String("30".into())),
            Ok(Duration::from_secs(30))
        );
        assert!(keep_alive(&toml::Value::Integer(0)).is_err());
    }

    #[test]
    fn addresses() {
        assert!(check_address("mqtt://127.0.0.1:1883").is_ok());
        assert!(check_address("mqtt://broker").is_ok());
        assert!(check_address("mqtts://broker:8883").is_ok());
        assert!(check_address("tcp://broker:1883").is_err());
    }
}
