//! One MQTT trigger's link to the broker: connect (and reconnect forever),
//! subscribe when the broker has no session for us, read messages and
//! dispatch them, acknowledge each once handled.
//!
//! rumqttc does all of a connection's I/O, keep-alive pings included, inside
//! `EventLoop::poll`. So the session keeps polling while the trigger is full,
//! parking what arrives meanwhile in a small queue bounded by count and bytes;
//! only when that is full too does it stop reading (backpressure, and the
//! broker may then drop the connection for a missed keep-alive).
//!
//! An acknowledgement names a packet id, which means a message only on the
//! connection it came in on: after a reconnect the broker resends what we did
//! not acknowledge, under ids that may now name other messages. So every
//! message carries the number of the connection it arrived on, and an
//! acknowledgement from an earlier connection is dropped, never sent: its
//! message comes again and is handled again (at least once).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, Request, SubscribeReasonCode,
};
use tokio::sync::mpsc;

use super::MqttGuest;
use crate::app::{MqttBroker, MqttTrigger};
use crate::metrics::pubsub::TriggerMetrics;
use crate::shutdown::Shutdown;
use crate::tls;
use crate::trigger::dispatch::Dispatcher;
use crate::trigger::pubsub_threads::Placement;
use crate::trigger::reconnect::{Reconnect, redact};
use crate::trigger::retry;

/// Largest message accepted; messages in flight are bounded by `concurrency`,
/// so memory is bounded by their product.
const MAX_PACKET_SIZE: usize = 4 * 1024 * 1024;
/// How long a graceful disconnect may take once in-flight messages are done.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests (acknowledgements, dead letters, subscribe) the client queues.
const CLIENT_QUEUE: usize = 64;
/// Messages parked while the trigger is full, and their bytes (at least one
/// message is always taken).
const MAX_PARKED: usize = 32;
const MAX_PARKED_BYTES: usize = 8 * 1024 * 1024;

pub struct Session {
    name: String,
    topic: String,
    qos: QoS,
    client: AsyncClient,
    events: EventLoop,
    dispatcher: Dispatcher<Delivery>,
    /// What handlers want sent, in order (see [`Outgoing`]).
    outgoing: mpsc::UnboundedReceiver<Outgoing>,
    /// Taken from `outgoing` but not yet accepted by the client's queue.
    backlog: VecDeque<Outgoing>,
    /// Received while the trigger was full, oldest first.
    parked: Parked,
    /// Counts connections: the one messages arrive on now.
    connection: u64,
    metrics: TriggerMetrics,
}

/// A message and the connection it arrived on.
struct Delivery {
    connection: u64,
    message: Publish,
}

#[derive(Default)]
struct Parked {
    messages: VecDeque<Publish>,
    bytes: usize,
}

impl Parked {
    fn has_room(&self) -> bool {
        self.messages.is_empty()
            || (self.messages.len() < MAX_PARKED && self.bytes < MAX_PARKED_BYTES)
    }

    fn push(&mut self, message: Publish) {
        self.bytes += message.payload.len();
        self.messages.push_back(message);
    }

    fn pop(&mut self) -> Option<Publish> {
        let message = self.messages.pop_front()?;
        self.bytes -= message.payload.len();
        Some(message)
    }

    fn unpop(&mut self, message: Publish) {
        self.bytes += message.payload.len();
        self.messages.push_front(message);
    }

    /// After a connection was lost: QoS 1 and 2 messages will come again (and
    /// could not be acknowledged any more); QoS 0 ones never would.
    fn keep_only_qos0(&mut self) {
        self.messages.retain(|m| m.qos == QoS::AtMostOnce);
        self.bytes = self.messages.iter().map(|m| m.payload.len()).sum();
    }
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
    Ack {
        connection: u64,
        message: Publish,
    },
}

impl Session {
    pub fn new(
        broker: &MqttBroker,
        trigger: &MqttTrigger,
        guest: Arc<MqttGuest>,
        tls: &Arc<rustls::ClientConfig>,
        placement: Placement,
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
        let metrics =
            crate::metrics::global()
                .pubsub
                .trigger("mqtt", &trigger.id, &trigger.component);
        let handler = Handler {
            name: name.clone(),
            metrics: metrics.clone(),
            to_session,
            guest,
            max_attempts: trigger.delivery.max_attempts,
            dead_letter_topic: trigger.dead_letter_topic.clone(),
        };
        let handler = Arc::new(handler);
        let queued = metrics.queued.clone();
        let dispatcher =
            Dispatcher::new(concurrency, queued, placement, move |delivery: Delivery| {
                let handler = handler.clone();
                async move { handler.handle(delivery).await }
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
            parked: Parked::default(),
            connection: 0,
            metrics,
        })
    }

    /// The thread [`Session::run`] belongs on (see `pubsub_threads`).
    pub fn home(&self) -> tokio::runtime::Handle {
        self.dispatcher.home()
    }

    pub async fn run(mut self, mut shutdown: Shutdown, drain_timeout: Duration) {
        let mut link = Reconnect::new(self.name.clone(), self.metrics.clone());
        loop {
            self.dispatch_parked();
            self.feed_client();
            let reading = self.parked.has_room();
            let waiting = !self.parked.messages.is_empty();
            let event = tokio::select! {
                event = self.events.poll(), if reading => event,
                Some(packet) = self.outgoing.recv() => {
                    self.backlog.push_back(packet);
                    continue;
                }
                () = self.dispatcher.room(), if waiting => continue,
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
                // Parked behind earlier ones, so one topic stays in order.
                Ok(Event::Incoming(Packet::Publish(message))) => self.parked.push(message),
                Ok(_) => {}
                Err(e) => {
                    self.connection_lost();
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

    /// Hands parked messages to the dispatcher while it has room.
    fn dispatch_parked(&mut self) {
        while let Some(message) = self.parked.pop() {
            let topic = message.topic.clone();
            let delivery = Delivery {
                connection: self.connection,
                message,
            };
            if let Err(Delivery { message, .. }) = self.dispatcher.try_dispatch(&topic, delivery) {
                self.parked.unpop(message);
                return;
            }
        }
    }

    /// Forgets what only meant something on the lost connection: its
    /// acknowledgements (ours queued, and rumqttc's for QoS 2) and the
    /// messages it brought that the broker will send again.
    fn connection_lost(&mut self) {
        self.connection += 1;
        let current = self.connection;
        self.backlog.retain(|packet| match packet {
            Outgoing::Ack { connection, .. } => *connection == current,
            _ => true,
        });
        self.events
            .pending
            .retain(|r| !matches!(r, Request::PubAck(_) | Request::PubRec(_)));
        self.parked.keep_only_qos0();
    }

    fn feed_client(&mut self) {
        feed(&self.client, &mut self.backlog, self.connection);
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
                connection,
                ..
            } = &mut self;
            let keep_polling = async {
                loop {
                    feed(client, backlog, *connection);
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
        feed(&self.client, &mut self.backlog, self.connection);
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

/// Moves packets from `backlog` into the client's queue until it is full,
/// dropping acknowledgements of messages from before `connection`.
fn feed(client: &AsyncClient, backlog: &mut VecDeque<Outgoing>, connection: u64) {
    while let Some(packet) = backlog.pop_front() {
        let sent = match &packet {
            Outgoing::Subscribe(filter, qos) => client.try_subscribe(filter.clone(), *qos),
            Outgoing::DeadLetter { topic, payload } => {
                client.try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.to_vec())
            }
            Outgoing::Ack {
                connection: arrived,
                message,
            } => {
                if *arrived != connection {
                    continue;
                }
                client.try_ack(message)
            }
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
    metrics: TriggerMetrics,
    to_session: mpsc::UnboundedSender<Outgoing>,
    guest: Arc<MqttGuest>,
    max_attempts: u32,
    dead_letter_topic: Option<String>,
}

impl Handler {
    async fn handle(&self, delivery: Delivery) {
        let Delivery {
            connection,
            message,
        } = delivery;
        let what = format!("{}: message on {:?}", self.name, message.topic);
        tracing::debug!("{what}: received");
        self.metrics.received.inc();
        let handled = retry::with_retries(self.max_attempts, &what, |attempt| {
            if attempt > 1 {
                self.metrics.retries.inc();
            }
            self.guest
                .handle(message.payload.to_vec(), message.topic.clone())
        })
        .await;
        match handled {
            Ok(()) => {
                self.metrics.handled.inc();
                tracing::debug!("{what}: handled")
            }
            Err(e) => match &self.dead_letter_topic {
                Some(dead) => {
                    self.metrics.dead_lettered.inc();
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
                None => {
                    self.metrics.dropped.inc();
                    tracing::error!(
                        "{what}: failed {} times ({e:#}); dropped (set dead_letter_topic to keep such messages)",
                        self.max_attempts
                    )
                }
            },
        }
        // Only the packet id and QoS matter for the acknowledgement.
        let ack = Publish {
            payload: bytes::Bytes::new(),
            ..message
        };
        let _ = self.to_session.send(Outgoing::Ack {
            connection,
            message: ack,
        });
    }
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(pkid: u16) -> Publish {
        let mut message = Publish::new("t", QoS::ExactlyOnce, Vec::new());
        message.pkid = pkid;
        message
    }

    fn ack(connection: u64, pkid: u16) -> Outgoing {
        Outgoing::Ack {
            connection,
            message: message(pkid),
        }
    }

    #[test]
    fn acknowledgements_from_an_earlier_connection_are_never_sent() {
        let (client, mut events) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), 8);
        let mut backlog = VecDeque::from([
            ack(0, 1),
            ack(1, 2),
            Outgoing::DeadLetter {
                topic: "dead".into(),
                payload: bytes::Bytes::from_static(b"x"),
            },
            ack(0, 3),
        ]);
        feed(&client, &mut backlog, 1);
        assert!(backlog.is_empty());
        // What reached the client's queue (QoS 2 acknowledgements are PUBRECs).
        events.clean();
        let sent: Vec<String> = events
            .pending
            .iter()
            .map(|r| match r {
                Request::PubRec(rec) => format!("pubrec {}", rec.pkid),
                Request::Publish(p) => format!("publish {}", p.topic),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(sent, ["pubrec 2", "publish dead"]);
    }

    #[test]
    fn parked_messages_are_bounded_and_qos0_survives_a_reconnect() {
        let mut parked = Parked::default();
        assert!(parked.has_room());
        // One message is always taken, however large.
        parked.push(Publish::new(
            "t",
            QoS::AtLeastOnce,
            vec![0u8; MAX_PARKED_BYTES * 2],
        ));
        assert!(!parked.has_room());
        parked.pop();
        for _ in 0..MAX_PARKED {
            assert!(parked.has_room());
            parked.push(Publish::new("t", QoS::AtMostOnce, vec![0u8; 1]));
        }
        assert!(!parked.has_room());
        parked.push(Publish::new("t", QoS::AtLeastOnce, vec![0u8; 10]));
        parked.keep_only_qos0();
        assert_eq!(parked.messages.len(), MAX_PARKED);
        assert_eq!(parked.bytes, MAX_PARKED);
    }
}
