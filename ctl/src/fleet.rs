//! `gatewayctl fleet status`: every gateway's retained status message
//! (`gatewayd/<gateway-id>/status`, kept by gateways with `[fleet]
//! status_broker`) read from the broker, as a table with a count per app
//! version, or as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow};
use gatewayd::fleet::settings::parse_broker;
use gatewayd::fleet::status::{FleetMessage, TOPIC_FILTER};
use rumqttc::{Event, MqttOptions, Packet, QoS};

#[derive(clap::Args, Debug)]
pub struct BrokerArgs {
    /// The broker the gateways report to (their `[fleet] status_broker`):
    /// mqtt://HOST[:PORT] or mqtts://HOST[:PORT].
    #[arg(long, value_name = "ADDR", env = "GATEWAYCTL_FLEET_BROKER")]
    pub broker: String,
    /// Broker user name.
    #[arg(
        id = "broker_username",
        long = "broker-username",
        value_name = "NAME",
        env = "GATEWAYCTL_FLEET_USERNAME"
    )]
    pub username: Option<String>,
    /// Broker password (or set GATEWAYCTL_FLEET_PASSWORD).
    #[arg(
        id = "broker_password",
        long = "broker-password",
        value_name = "PASSWORD",
        env = "GATEWAYCTL_FLEET_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// For mqtts://: also trust the CA certificates in this PEM file.
    #[arg(id = "broker_ca_file", long = "broker-ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// How long to wait for the broker's answers at most.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub wait: Duration,
}

/// How long to wait for more messages once the retained ones stop coming.
const QUIET: Duration = Duration::from_millis(500);

pub fn status(broker: &BrokerArgs, json: bool) -> Result<()> {
    let messages = crate::admin_client::block_on(collect(broker))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&messages)?);
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    print!("{}", table(&messages, now));
    Ok(())
}

/// The retained status of every gateway, by gateway id: what the broker
/// sends right after the subscription, and anything newer within `wait`.
pub async fn collect(args: &BrokerArgs) -> Result<Vec<FleetMessage>> {
    let wait = args.wait;
    let (scheme, host, port) =
        parse_broker(&args.broker).map_err(|e| anyhow!("--broker {:?}: {e}", args.broker))?;
    let client_id = format!("gatewayctl-fleet-{}", std::process::id());
    let mut options = MqttOptions::new(client_id, &host, port);
    options.set_clean_session(true);
    options.set_keep_alive(Duration::from_secs(30));
    if let Some(username) = &args.username {
        options.set_credentials(username, args.password.as_deref().unwrap_or_default());
    }
    let tls = gatewayd::tls::client_config(&args.ca_file.iter().cloned().collect::<Vec<_>>())?;
    let (client, mut events) = gatewayd::tls::mqtt_client(options, &scheme, &tls, 16);
    client
        .subscribe(TOPIC_FILTER, QoS::AtLeastOnce)
        .await
        .context("subscribing")?;

    let mut gateways: BTreeMap<String, FleetMessage> = BTreeMap::new();
    let deadline = Instant::now() + wait.max(QUIET);
    let mut subscribed = false;
    let mut last_heard = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline || (subscribed && now >= last_heard + QUIET) {
            break;
        }
        let until = if subscribed {
            deadline.min(last_heard + QUIET)
        } else {
            deadline
        };
        let event = match tokio::time::timeout_at(until.into(), events.poll()).await {
            Err(_) => continue,
            Ok(Err(e)) => return Err(anyhow!("{}: {e}", args.broker)),
            Ok(Ok(event)) => event,
        };
        match event {
            Event::Incoming(Packet::SubAck(ack)) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    return Err(anyhow!(
                        "{}: the broker refused the subscription to {TOPIC_FILTER}",
                        args.broker
                    ));
                }
                subscribed = true;
                last_heard = Instant::now();
            }
            Event::Incoming(Packet::Publish(publish)) => {
                last_heard = Instant::now();
                // An empty retained message is a cleared one.
                if publish.payload.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<FleetMessage>(&publish.payload) {
                    Ok(message) => {
                        gateways.insert(message.gateway.clone(), message);
                    }
                    Err(e) => eprintln!(
                        "gatewayctl: {}: not a gatewayd status message, skipped: {e}",
                        publish.topic
                    ),
                }
            }
            _ => {}
        }
    }
    if !subscribed {
        return Err(anyhow!(
            "{}: no answer to the subscription within {wait:?}",
            args.broker
        ));
    }
    let _ = client.try_disconnect();
    Ok(gateways.into_values().collect())
}

/// One line per gateway, then the counts by state and by app version.
fn table(gateways: &[FleetMessage], now: u64) -> String {
    if gateways.is_empty() {
        return "no gateway reports to this broker (gateways report with [fleet] status_broker)\n"
            .to_string();
    }
    let mut rows = vec![[
        "GATEWAY".to_string(),
        "STATE".into(),
        "APP".into(),
        "VERSION".into(),
        "GEN".into(),
        "LAST UPDATE".into(),
        "SINCE".into(),
    ]];
    let mut versions: BTreeMap<String, usize> = BTreeMap::new();
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for g in gateways {
        *states.entry(g.state.as_str()).or_default() += 1;
        let status = g.status.as_ref();
        let app = status.and_then(|s| s.app.clone());
        let version = status.and_then(|s| s.version.clone());
        *versions
            .entry(match (&app, &version) {
                (Some(app), Some(version)) => format!("{app} {version}"),
                _ => "no app".to_string(),
            })
            .or_default() += 1;
        let last_update = status
            .and_then(|s| s.last_update.as_ref())
            .map(|u| {
                let mut text = u.result.clone();
                if let Some(version) = &u.version {
                    text += &format!(" {version}");
                }
                text
            })
            .unwrap_or_else(|| "-".into());
        rows.push([
            g.gateway.clone(),
            g.state.clone(),
            app.unwrap_or_else(|| "-".into()),
            version.unwrap_or_else(|| "-".into()),
            status
                .and_then(|s| s.generation)
                .map_or("-".into(), |n| n.to_string()),
            last_update,
            if g.at_unix == 0 {
                "-".into()
            } else {
                format!(
                    "{} ago",
                    crate::status::duration(now.saturating_sub(g.at_unix))
                )
            },
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
    }
    let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let versions: Vec<String> = versions.iter().map(|(v, n)| format!("{v}: {n}")).collect();
    out += &format!(
        "{} gateway{}: {}; {}\n",
        gateways.len(),
        if gateways.len() == 1 { "" } else { "s" },
        states.join(", "),
        versions.join(", ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatewayd::admin::api::{LastUpdate, Status};

    fn message(gateway: &str, state: &str, version: Option<&str>, at_unix: u64) -> FleetMessage {
        FleetMessage {
            gateway: gateway.into(),
            state: state.into(),
            at_unix,
            status: Some(Status {
                app: version.map(|_| "hello".into()),
                version: version.map(Into::into),
                generation: version.map(|_| 2),
                last_update: Some(LastUpdate {
                    result: "ok".into(),
                    message: String::new(),
                    version: version.map(Into::into),
                    at_unix: None,
                }),
                ..Status::default()
            }),
        }
    }

    #[test]
    fn the_table_counts_states_and_versions() {
        let table = table(
            &[
                message("gw-1", "online", Some("1.1.0"), 990),
                message("gw-2", "offline", Some("1.0.0"), 400),
                message("gw-3", "online", Some("1.1.0"), 1000),
                message("gw-4", "online", None, 0),
            ],
            1000,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("GATEWAY  STATE    APP"), "{table}");
        assert!(
            lines[1].starts_with("gw-1     online   hello  1.1.0"),
            "{table}"
        );
        assert!(
            lines[2].contains("offline") && lines[2].ends_with("10m ago"),
            "{table}"
        );
        assert_eq!(
            lines[5],
            "4 gateways: 1 offline, 3 online; hello 1.0.0: 1, hello 1.1.0: 2, no app: 1"
        );
        assert!(super::table(&[], 0).starts_with("no gateway reports"));
    }
}
