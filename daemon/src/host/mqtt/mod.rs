//! Outbound MQTT publish for both interface generations:
//! `fermyon:spin/mqtt@2.0.0` (Spin SDK 5) and `spin:mqtt/mqtt@3.0.0` (SDK 6/7).
//!
//! A component may open only `mqtt://` addresses its `allowed_outbound_hosts`
//! grant. Connections are shared by every instance that opens the same
//! address with the same credentials: each has one owner thread polling
//! rumqttc's event loop (which reconnects by itself), and cheap handles for
//! everyone else. A QoS 1 or 2 `publish` returns only once the broker
//! acknowledged the message: rumqttc has no per-message acknowledgement, so
//! the owner matches acknowledgements to publishers by packet id ([`acks`]).

mod acks;
mod v2;
mod v3;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use wasmtime::component::{HasData, Linker, ResourceTable};

use super::allowed_hosts::AllowedHosts;
use super::connections::{Lease, Pool, PoolFull};
use super::{Capability, Grantee, HostState};
use acks::Acks;

/// How long connecting to a broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a QoS 1/2 publish waits for the broker's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued towards one broker before `publish` waits (backpressure).
const QUEUE_CAPACITY: usize = 1000;
/// Largest message a component may publish (topic plus payload), in bytes.
/// rumqttc's own default (10 KiB) is too small for real payloads, and a
/// packet over its limit is never sent, so every publish is checked here.
pub const MAX_PUBLISH_SIZE: usize = 1 << 20;
/// A PUBLISH packet's framing beyond topic and payload: fixed header (up to
/// 5 bytes), topic length (2), packet id (2).
const PUBLISH_FRAMING: usize = 9;
/// Largest packet taken from the broker: on a publish-only connection, only
/// acknowledgements and pings come in.
const MAX_INCOMING_PACKET: usize = 16 << 10;

/// Broker connections the process keeps open at once (each has a thread).
const MAX_CONNECTIONS: usize = 16;

/// What makes two connections interchangeable: address and credentials. Not
/// the keep-alive a component asks for: the first connection's is kept, so
/// varying it cannot open a connection per value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BrokerKey {
    scheme: String,
    host: String,
    port: u16,
    username: String,
    password: String,
}

/// The process-wide broker connections, shared by every app generation.
pub struct MqttConnections {
    pool: Pool<BrokerKey, Broker>,
    /// Client ids are unique for the life of the process: two connections
    /// with one id make the broker close one for the other, over and over.
    next_id: AtomicU64,
    tls: Arc<rustls::ClientConfig>,
}

/// The broker connections one app generation uses.
pub type MqttLease = Lease<BrokerKey, Broker>;

/// One broker connection: the client handle and the acknowledgement matcher.
/// Dropping it (no generation uses it any more) ends the owner thread, which
/// says goodbye to the broker.
pub struct Broker {
    client: AsyncClient,
    acks: Arc<Acks>,
    _owner: acks::OwnerHandle,
}

impl MqttConnections {
    /// `tls` is used for `mqtts://` brokers.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            pool: Pool::new(MAX_CONNECTIONS),
            next_id: AtomicU64::new(0),
            tls,
        }
    }

    /// Broker connections open now (for metrics).
    pub fn open_count(&self) -> usize {
        self.pool.live()
    }

    async fn connect(
        &self,
        lease: &MqttLease,
        key: BrokerKey,
        keep_alive: u64,
    ) -> Result<Arc<Broker>, Failure> {
        lease
            .get_or_connect(&self.pool, key.clone(), || self.open(key, keep_alive))
            .await
    }

    async fn open(&self, key: BrokerKey, keep_alive: u64) -> Result<Broker, Failure> {
        let BrokerKey {
            scheme,
            host,
            port,
            username,
            password,
        } = key;
        let id = format!(
            "gatewayd-{}-{}",
            std::process::id(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, &host, port);
        options.set_keep_alive(Duration::from_secs(keep_alive.clamp(5, 65535)));
        options.set_max_packet_size(MAX_INCOMING_PACKET, MAX_PUBLISH_SIZE + PUBLISH_FRAMING);
        if !username.is_empty() {
            options.set_credentials(username, password);
        }
        let (client, event_loop) =
            crate::tls::mqtt_client(options, &scheme, &self.tls, QUEUE_CAPACITY);
        let acks = Arc::new(Acks::default());
        let (owner, connected) = acks::run_event_loop(
            event_loop,
            client.clone(),
            acks.clone(),
            format!("{host}:{port}"),
        );
        match tokio::time::timeout(CONNECT_TIMEOUT, connected).await {
            Ok(Ok(())) => Ok(Broker {
                client,
                acks,
                _owner: owner,
            }),
            // Dropping `owner` ends the thread.
            Ok(Err(e)) => Err(Failure::ConnectionFailed(format!("{host}:{port}: {e}"))),
            Err(_) => Err(Failure::ConnectionFailed(format!(
                "{host}:{port}: no answer within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }
}

/// What one instance may reach.
#[derive(Clone)]
pub struct Mqtt {
    component_id: Arc<str>,
    allowed: Arc<AllowedHosts>,
    connections: Arc<MqttConnections>,
    lease: Arc<MqttLease>,
}

impl Mqtt {
    fn new(
        component_id: Arc<str>,
        allowed: Arc<AllowedHosts>,
        connections: Arc<MqttConnections>,
        lease: Arc<MqttLease>,
    ) -> Self {
        Self {
            component_id,
            allowed,
            connections,
            lease,
        }
    }

    async fn open(
        &self,
        address: &str,
        username: &str,
        password: &str,
        keep_alive: u64,
    ) -> Result<MqttConnection, Failure> {
        let uri: http::Uri = address.parse().map_err(|_| Failure::InvalidAddress)?;
        let scheme = uri.scheme_str().ok_or(Failure::InvalidAddress)?;
        if scheme != "mqtt" && scheme != "mqtts" {
            return Err(Failure::InvalidAddress);
        }
        let host = uri.host().ok_or(Failure::InvalidAddress)?;
        let port = uri
            .port_u16()
            .unwrap_or(crate::tls::mqtt_default_port(scheme));
        let server: Arc<str> = format!("{host}:{port}").into();
        if !self.allowed.allows(scheme, host, Some(port)) {
            crate::metrics::global()
                .outbound
                .call("mqtt", &server, false);
            tracing::warn!(
                component = &*self.component_id,
                host,
                port,
                "MQTT connection denied: not granted by allowed_outbound_hosts"
            );
            return Err(Failure::InvalidAddress);
        }
        let key = BrokerKey {
            scheme: scheme.to_string(),
            host: host.to_string(),
            port,
            username: username.to_string(),
            password: password.to_string(),
        };
        let broker = self.connections.connect(&self.lease, key, keep_alive).await;
        if broker.is_err() {
            crate::metrics::global()
                .outbound
                .call("mqtt", &server, false);
        }
        Ok(MqttConnection {
            broker: broker?,
            server,
        })
    }
}

/// An open connection, as kept in the instance's resource table.
#[derive(Clone)]
pub struct MqttConnection {
    broker: Arc<Broker>,
    /// `host:port`, for metrics.
    server: Arc<str>,
}

impl MqttConnection {
    async fn publish(&self, topic: String, payload: Vec<u8>, qos: QoS) -> Result<(), Failure> {
        let result = self.try_publish(topic, payload, qos).await;
        crate::metrics::global()
            .outbound
            .call("mqtt", &self.server, result.is_ok());
        result
    }

    async fn try_publish(&self, topic: String, payload: Vec<u8>, qos: QoS) -> Result<(), Failure> {
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(Failure::Other(format!(
                "\"{topic}\" is not a topic to publish on (empty or has a wildcard)"
            )));
        }
        let size = topic.len() + payload.len();
        if size > MAX_PUBLISH_SIZE {
            return Err(Failure::Other(format!(
                "the message is {size} bytes (topic and payload); the limit is {MAX_PUBLISH_SIZE}"
            )));
        }
        let acked = self
            .broker
            .acks
            .publish(&self.broker.client, topic, qos, payload)
            .await
            .map_err(Failure::Other)?;
        match tokio::time::timeout(ACK_TIMEOUT, acked).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(Failure::ConnectionFailed(e)),
            Ok(Err(_)) => Err(Failure::ConnectionFailed(
                "the connection was closed".into(),
            )),
            Err(_) => Err(Failure::Other(format!(
                "the broker did not acknowledge the message within {ACK_TIMEOUT:?}"
            ))),
        }
    }
}

/// A failed operation, before it is mapped to either generation's `error`.
#[derive(Debug)]
enum Failure {
    InvalidAddress,
    ConnectionFailed(String),
    Other(String),
    TooManyConnections,
}

impl From<PoolFull> for Failure {
    fn from(full: PoolFull) -> Self {
        tracing::warn!("outbound MQTT: {full}");
        Failure::TooManyConnections
    }
}

/// What the generated bindings see of the store data.
pub struct MqttView<'a> {
    table: &'a mut ResourceTable,
    mqtt: &'a Mqtt,
}

struct MqttCapability;

impl HasData for MqttCapability {
    type Data<'a> = MqttView<'a>;
}

fn view(state: &mut HostState) -> MqttView<'_> {
    MqttView {
        table: &mut state.table,
        mqtt: &state.grants.mqtt,
    }
}

impl Capability for Mqtt {
    const INTERFACES: &'static [&'static str] =
        &["fermyon:spin/mqtt@2.0.0", "spin:mqtt/mqtt@3.0.0"];
    /// The connections this generation opened stay open while it lives.
    type Generation = MqttLease;

    fn grant(component: &Grantee<'_>, lease: &Arc<MqttLease>) -> Result<Self> {
        Ok(Self::new(
            component.id.clone(),
            component.allowed_hosts.clone(),
            component.resources.mqtt.clone(),
            lease.clone(),
        ))
    }

    fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::bindings::fermyon::spin::mqtt::add_to_linker::<HostState, MqttCapability>(
            linker, view,
        )
        .map_err(anyhow::Error::from)?;
        Ok(())
    }

    fn add_async_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::bindings::spin::mqtt::mqtt::add_to_linker::<HostState, MqttCapability>(linker, view)
            .map_err(anyhow::Error::from)?;
        Ok(())
    }
}
