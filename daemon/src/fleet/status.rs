//! Fleet status over MQTT. With `[fleet] status_broker`, the gateway keeps a
//! retained message on `gatewayd/<gateway-id>/status`: its state and what it
//! runs (the admin API's [`Status`]), republished after every update or
//! rollback and every `status_interval`. Its last will, retained too, says
//! `offline` with what it ran when it connected, so a gateway that loses
//! power or its network shows as offline without a goodbye; a clean stop
//! says `stopped`. `gatewayctl fleet status` reads them back through the
//! same [`FleetMessage`].
//!
//! The broker is a reporting channel, never a control one: nothing received
//! here changes the gateway, and a broker that is down changes nothing but
//! the report (the gateway retries, with backoff, forever).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde::{Deserialize, Serialize};

use super::settings::StatusSettings;
use crate::admin::api::Status;
use crate::shutdown::Shutdown;
use crate::update::controller::Controller;

/// The longest wait between tries to reach the broker (from 1 s, doubling).
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// The topic filter that matches every gateway's status.
pub const TOPIC_FILTER: &str = "gatewayd/+/status";

pub fn topic(gateway_id: &str) -> String {
    format!("gatewayd/{gateway_id}/status")
}

/// One gateway's retained status message.
#[derive(Debug, Serialize, Deserialize)]
pub struct FleetMessage {
    pub gateway: String,
    /// `online`, `offline` (its last will: the connection dropped) or
    /// `stopped` (it stopped cleanly).
    pub state: String,
    /// When the message was made; a last will's is when its gateway connected.
    #[serde(default)]
    pub at_unix: u64,
    /// What the gateway runs (for `offline`: ran when it connected).
    #[serde(default)]
    pub status: Option<Status>,
}

impl FleetMessage {
    fn new(gateway: &str, state: &str, status: Status) -> Self {
        FleetMessage {
            gateway: gateway.to_string(),
            state: state.to_string(),
            at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            status: Some(status),
        }
    }

    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why one connection ended.
enum Ended {
    /// An update changed what the gateway runs: its last will is stale, so
    /// reconnect with a new one.
    Changed,
    Stopped,
}

/// Publishes the gateway's status until `shutdown`; returns once the
/// `stopped` message is out (or could not be sent within 2 s).
pub async fn publish(
    settings: StatusSettings,
    controller: Arc<Controller>,
    tls: Arc<rustls::ClientConfig>,
    mut shutdown: Shutdown,
) {
    let mut changes = controller.changes();
    loop {
        match connection(&settings, &controller, &tls, &mut changes, &mut shutdown).await {
            Ended::Changed => continue,
            Ended::Stopped => return,
        }
    }
}

async fn connection(
    settings: &StatusSettings,
    controller: &Controller,
    tls: &Arc<rustls::ClientConfig>,
    changes: &mut tokio::sync::watch::Receiver<()>,
    shutdown: &mut Shutdown,
) -> Ended {
    let id = &settings.gateway_id;
    let topic = topic(id);
    let will = FleetMessage::new(id, "offline", controller.status().await);
    let mut options = MqttOptions::new(
        format!("gatewayd-status-{id}"),
        &settings.host,
        settings.port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_last_will(LastWill::new(
        &topic,
        will.payload(),
        QoS::AtLeastOnce,
        true,
    ));
    if !settings.username.is_empty() {
        options.set_credentials(&settings.username, &settings.password);
    }
    let (client, mut events) = crate::tls::mqtt_client(options, &settings.scheme, tls, 16);
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connected = false;
    let mut backoff = Duration::from_secs(1);
    let mut warned = false;
    changes.mark_unchanged();
    let send = |state: &str, status: Status| {
        let message = FleetMessage::new(id, state, status);
        // Never blocks: the event loop, polled below, drains the queue; a
        // full queue means a stuck broker, and the next status replaces this.
        if let Err(e) = client.try_publish(&topic, QoS::AtLeastOnce, true, message.payload()) {
            tracing::debug!("fleet status: not queued: {e}");
        }
    };
    loop {
        tokio::select! {
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(
                        "fleet status: connected to {} as gateway {id:?} (topic {topic})",
                        settings.broker
                    );
                    (connected, warned, backoff) = (true, false, Duration::from_secs(1));
                    send("online", controller.status().await);
                }
                Ok(_) => {}
                Err(e) => {
                    if !warned {
                        tracing::warn!(
                            "fleet status: {}: {e}; retrying (the gateway serves on regardless)",
                            settings.broker
                        );
                        warned = true;
                    }
                    connected = false;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.requested() => return Ended::Stopped,
                    }
                    backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                }
            },
            _ = ticker.tick() => if connected {
                send("online", controller.status().await);
            },
            Ok(()) = changes.changed() => {
                if connected {
                    send("online", controller.status().await);
                    disconnect(&client, &mut events).await;
                }
                return Ended::Changed;
            }
            _ = shutdown.requested() => {
                if connected {
                    send("stopped", controller.status().await);
                    disconnect(&client, &mut events).await;
                }
                return Ended::Stopped;
            }
        }
    }
}

/// Sends what is queued, then a DISCONNECT (which keeps the broker from
/// publishing the last will), within 2 s.
async fn disconnect(client: &rumqttc::AsyncClient, events: &mut rumqttc::EventLoop) {
    let _ = client.try_disconnect();
    let drained = async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
}
