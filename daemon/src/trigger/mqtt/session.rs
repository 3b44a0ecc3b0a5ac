//! One MQTT trigger's link to the broker: connect (and reconnect forever),
//! subscribe when the broker has no session for us, read messages and
//! dispatch them, acknowledge each once handled.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;

use super::MqttGuest;
use crate::app::{MqttBroker, MqttTrigger};
use crate::shutdown::Shutdown;
use crate::tls;
use crate::trigger::dispatch::Dispatcher;
use crate::trigger::reconnect::{Reconnect, redact};
use crate::trigger::retry;

/// Largest message accepted; messages in flight are bounded by `concurrency`,
/// so memory is bounded by their product.
const MAX_PACKET_SIZE: usize = 4 * 1024 * 1024;
/// How long a graceful disconnect may take once in-flight messages are done.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests (acknowledgements, dead letters, subscribe) the client queues.
const CLIENT_QUEUE: usize = 64;

pub struct Session {
    name: String,
    topic: String,
    qos: QoS,
    client: AsyncClient,
    events: EventLoop,
    dispatcher: Dispatcher<Publish>,
    /// What handlers want sent, in order (see [`Outgoing`]).
    outgoing: mpsc::UnboundedReceiver<Outgoing>,
    /// Taken from `outgoing` but not yet accepted by the client's queue.
    backlog: VecDeque<Outgoing>,
}

/// Packets a handler wants sent. Handlers never wait on the client's queue:
/// that queue only drains while the session polls, and the session may be
/// waiting for a handler to finish (a full trigger). So handlers hand their
/// packets to the session, which feeds the client's queue without blocking.
/// Their number is bounded by the messages the broker lets us hold
/// unacknowledged.
enum Outgoing {
    Subscribe(String, QoS),
    DeadLetter {
        topic: String,
        payload: bytes::Bytes,
    },
    Ack(Publish),
}

impl Session {
    pub fn new(
        broker: &MqttBroker,
        trigger: &MqttTrigger,
        guest: Arc<MqttGuest>,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Self> {
        let uri: http::Uri = broker.address.parse()?;
        let scheme = uri.scheme_str().unwrap_or("mqtt");
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(tls::mqtt_default_port(scheme));
        let client_id = format!("{}-{}", broker.client_id, trigger.id);
        let mut options = MqttOptions::new(client_id.clone(), host, port);
        // A persistent session: while we are away the broker keeps our
        // subscription and the QoS 1/2 messages we have not acknowledged.
        options.set_clean_session(false);
        options.set_manual_acks(true);
        options.set_keep_alive(broker.keep_alive);
        options.set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE);
        if !broker.username.is_empty() {
            options.set_credentials(&broker.username, &broker.password);
        }
        let concurrency = trigger.delivery.concurrency;
        let (client, events) = tls::mqtt_client(options, scheme, tls, CLIENT_QUEUE);
        let (to_session, outgoing) = mpsc::unbounded_channel();
        let name = format!(
            "MQTT trigger \"{}\" ({} as {client_id}, topic {:?})",
            trigger.id,
            redact(&broker.address),
            trigger.topic
        );
        let handler = Handler {
            name: name.clone(),
            to_session,
            guest,
            max_attempts: trigger.delivery.max_attempts,
            dead_letter_topic: trigger.dead_letter_topic.clone(),
        };
        let handler = Arc::new(handler);
        let dispatcher = Dispatcher::new(concurrency, move |message: Publish| {
            let handler = handler.clone();
            async move { handler.handle(message).await }
        });
        Ok(Self {
            name,
            topic: trigger.topic.clone(),
            qos: qos(trigger.qos),
            client,
            events,
            dispatcher,
            outgoing,
            backlog: VecDeque::new(),
        })
    }

    pub async fn run(mut self, mut shutdown: Shutdown, drain_timeout: Duration) {
        let mut link = Reconnect::new(self.name.clone());
        loop {
            self.feed_client();
            let event = tokio::select! {
                event = self.events.poll() => event,
                Some(packet) = self.outgoing.recv() => {
                    self.backlog.push_back(packet);
                    continue;
                }
                _ = shutdown.requested() => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    link.connected();
                    // With a session the broker kept our subscription; subscribing
                    // again would make it resend retained messages.
                    if ack.session_present {
                        tracing::info!("{}: resumed its session", self.name);
                    } else {
                        self.backlog
                            .push_front(Outgoing::Subscribe(self.topic.clone(), self.qos));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => match ack.return_codes.first() {
                    Some(SubscribeReasonCode::Success(granted)) => {
                        tracing::info!("{}: subscribed (broker granted {granted:?})", self.name);
                    }
                    _ => tracing::error!(
                        "{}: the broker refused the subscription (check its ACLs)",
                        self.name
                    ),
                },
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    let topic = message.topic.clone();
                    // While the trigger is full, handlers finishing still get
                    // their acknowledgements out.
                    let dispatch = self.dispatcher.dispatch(&topic, message);
                    tokio::pin!(dispatch);
                    loop {
                        tokio::select! {
                            () = &mut dispatch => break,
                            Some(packet) = self.outgoing.recv() => {
                                self.backlog.push_back(packet);
                            }
                            // Not handled and not acknowledged: the broker keeps it.
                            _ = shutdown.requested() => break,
                        }
                    }
                    if shutdown.is_requested() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let pause = link.failed(&e);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = shutdown.requested() => break,
                    }
                }
            }
        }
        self.stop(drain_timeout).await;
    }

    fn feed_client(&mut self) {
        feed(&self.client, &mut self.backlog);
    }

    /// Lets in-flight messages finish while their acknowledgements still go
    /// out (new messages are left unacknowledged for the next session), then
    /// disconnects.
    async fn stop(mut self, drain_timeout: Duration) {
        let in_flight = self.dispatcher.in_flight();
        if in_flight > 0 {
            tracing::info!("{}: waiting for {in_flight} in-flight messages", self.name);
        }
        let drained = {
            let Session {
                client,
                events,
                dispatcher,
                outgoing,
                backlog,
                ..
            } = &mut self;
            let keep_polling = async {
                loop {
                    feed(client, backlog);
                    tokio::select! {
                        event = events.poll() => if event.is_err() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        },
                        Some(packet) = outgoing.recv() => backlog.push_back(packet),
                    }
                }
            };
            tokio::select! {
                drained = dispatcher.drain(drain_timeout) => drained,
                () = keep_polling => unreachable!(),
            }
        };
        // The last acknowledgements, then the goodbye.
        while let Ok(packet) = self.outgoing.try_recv() {
            self.backlog.push_back(packet);
        }
        feed(&self.client, &mut self.backlog);
        if !drained {
            tracing::warn!(
                "{}: drain timeout reached; unfinished messages will be redelivered",
                self.name
            );
        }
        let _ = self.client.try_disconnect();
        let flush = async {
            while let Ok(event) = self.events.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DISCONNECT_TIMEOUT, flush).await;
    }
}

/// Moves packets from `backlog` into the client's queue until it is full.
fn feed(client: &AsyncClient, backlog: &mut VecDeque<Outgoing>) {
    while let Some(packet) = backlog.pop_front() {
        let sent = match &packet {
            Outgoing::Subscribe(filter, qos) => client.try_subscribe(filter.clone(), *qos),
            Outgoing::DeadLetter { topic, payload } => {
                client.try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.to_vec())
            }
            Outgoing::Ack(message) => client.try_ack(message),
        };
        match sent {
            Ok(()) => {}
            Err(rumqttc::ClientError::TryRequest(_)) => {
                backlog.push_front(packet);
                return;
            }
            // The event loop is gone: nothing can be sent any more, and the
            // broker redelivers what we did not acknowledge.
            Err(_) => return,
        }
    }
}

/// What happens to one message.
struct Handler {
    name: String,
    to_session: mpsc::UnboundedSender<Outgoing>,
    guest: Arc<MqttGuest>,
    max_attempts: u32,
    dead_letter_topic: Option<String>,
}

impl Handler {
    async fn handle(&self, message: Publish) {
        let what = format!("{}: message on {:?}", self.name, message.topic);
        tracing::debug!("{what}: received");
        let handled = retry::with_retries(self.max_attempts, &what, |_| {
            self.guest
                .handle(message.payload.to_vec(), message.topic.clone())
        })
        .await;
        match handled {
            Ok(()) => tracing::debug!("{what}: handled"),
            Err(e) => match &self.dead_letter_topic {
                Some(dead) => {
                    tracing::error!(
                        "{what}: failed {} times ({e:#}); moved to the dead-letter topic {dead:?}",
                        self.max_attempts
                    );
                    // Sent before the acknowledgement, on the same connection, so
                    // the broker has it before it forgets the original.
                    let _ = self.to_session.send(Outgoing::DeadLetter {
                        topic: dead.clone(),
                        payload: message.payload.clone(),
                    });
                }
                None => tracing::error!(
                    "{what}: failed {} times ({e:#}); dropped (set dead_letter_topic to keep such messages)",
                    self.max_attempts
                ),
            },
        }
        // Only the packet id and QoS matter for the acknowledgement.
        let ack = Publish {
            payload: bytes::Bytes::new(),
            ..message
        };
        let _ = self.to_session.send(Outgoing::Ack(ack));
    }
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}
