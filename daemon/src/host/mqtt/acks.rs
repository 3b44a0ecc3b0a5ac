//! Matching broker acknowledgements to publishers.
//!
//! rumqttc assigns packet ids inside its event loop and reports
//! `Outgoing::Publish(pkid)` in the order publishes were queued. So a
//! publisher queues its waiter and its message under one lock (same order in
//! both queues); the owner thread pops the next waiter at each outgoing
//! publish, completes it at once for QoS 0, else parks it under the packet id
//! until PUBACK (QoS 1) or PUBCOMP (QoS 2). When the connection drops, every
//! waiter gets an error: the guest learns its message may not have arrived.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
pub(super) struct Acks {
    /// Publishers whose message rumqttc has not sent yet, in queue order.
    queued: Mutex<VecDeque<(QoS, Waiter)>>,
    /// Sent messages waiting for their acknowledgement, by packet id.
    in_flight: Mutex<HashMap<u16, Waiter>>,
    /// Serialises "queue the waiter, queue the message".
    order: tokio::sync::Mutex<()>,
}

impl Acks {
    /// Queues a message; the returned receiver completes when it is acknowledged.
    pub(super) async fn publish(
        &self,
        client: &AsyncClient,
        topic: String,
        qos: QoS,
        payload: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<(), String>>, String> {
        let (tx, rx) = oneshot::channel();
        let _order = self.order.lock().await;
        self.queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((qos, tx));
        if let Err(e) = client.publish(topic, qos, false, payload).await {
            self.queued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_back();
            return Err(format!("the connection is closed: {e}"));
        }
        Ok(rx)
    }

    fn sent(&self, pkid: u16) {
        let next = self
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        if let Some((qos, waiter)) = next {
            if qos == QoS::AtMostOnce {
                let _ = waiter.send(Ok(()));
            } else {
                self.in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(pkid, waiter);
            }
        }
    }

    fn acknowledged(&self, pkid: u16) {
        let waiter = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pkid);
        if let Some(waiter) = waiter {
            let _ = waiter.send(Ok(()));
        }
    }

    fn fail_all(&self, reason: &str) {
        let in_flight: Vec<Waiter> = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, w)| w)
            .collect();
        for waiter in in_flight {
            let _ = waiter.send(Err(reason.to_string()));
        }
    }
}

/// Keeps a connection's owner thread running; dropping it ends the thread,
/// which sends the broker a DISCONNECT on the way out.
pub(super) struct OwnerHandle {
    _stop: oneshot::Sender<()>,
}

/// How long a closing connection waits to tell the broker goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the owner thread of one connection. The returned future resolves
/// once the broker accepted the connection (or failed to); the thread keeps
/// polling, and so reconnecting, until the returned handle is dropped.
pub(super) fn run_event_loop(
    mut event_loop: EventLoop,
    client: AsyncClient,
    acks: std::sync::Arc<Acks>,
    broker: String,
) -> (OwnerHandle, impl Future<Output = Result<(), String>>) {
    let (connected_tx, connected_rx) = oneshot::channel::<Result<(), String>>();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name(format!("mqtt {broker}"))
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let mut connected_tx = Some(connected_tx);
                let mut up = false;
                loop {
                    let event = tokio::select! {
                        _ = &mut stop_rx => break,
                        event = event_loop.poll() => event,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Some(tx) = connected_tx.take() {
                                let _ = tx.send(Ok(()));
                            } else if !up {
                                tracing::info!(broker = %broker, "MQTT connection restored");
                            }
                            up = true;
                        }
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => acks.sent(pkid),
                        Ok(Event::Incoming(Packet::PubAck(ack))) => acks.acknowledged(ack.pkid),
                        Ok(Event::Incoming(Packet::PubComp(comp))) => acks.acknowledged(comp.pkid),
                        Ok(_) => {}
                        Err(e) => {
                            let reason = format!("connection to {broker} lost: {e}");
                            if let Some(tx) = connected_tx.take() {
                                // Never connected: report and stop this thread.
                                let _ = tx.send(Err(e.to_string()));
                                return;
                            }
                            if up {
                                tracing::warn!(broker = %broker, "MQTT {reason}; reconnecting");
                            }
                            up = false;
                            acks.fail_all(&reason);
                            tokio::select! {
                                _ = &mut stop_rx => break,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
                if up {
                    goodbye(&mut event_loop, &client).await;
                }
            });
        });
    let connected = async move {
        if spawned.is_err() {
            return Err("cannot start the connection's thread".to_string());
        }
        connected_rx
            .await
            .unwrap_or_else(|_| Err("the connection's thread ended".into()))
    };
    (OwnerHandle { _stop: stop_tx }, connected)
}

/// Sends DISCONNECT so the broker drops the session at once (and does not
/// publish a will), within [`GOODBYE_TIMEOUT`].
async fn goodbye(event_loop: &mut EventLoop, client: &AsyncClient) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::MqttOptions;

    /// A client whose requests go nowhere: the event loop is never polled, so
    /// the test plays its part (`sent`, `acknowledged`) by hand.
    fn client() -> (AsyncClient, EventLoop) {
        AsyncClient::new(MqttOptions::new("acks-test", "127.0.0.1", 1), 16)
    }

    #[tokio::test]
    async fn acknowledgements_reach_their_publishers_by_packet_id() {
        let (client, _event_loop) = client();
        let acks = Acks::default();
        let publish = |topic: &str, qos| acks.publish(&client, topic.into(), qos, vec![]);
        let mut at_most_once = publish("a", QoS::AtMostOnce).await.unwrap();
        let mut at_least_once = publish("b", QoS::AtLeastOnce).await.unwrap();
        let mut exactly_once = publish("c", QoS::ExactlyOnce).await.unwrap();
        // rumqttc reports each publish as sent, in queue order, with its id.
        acks.sent(0);
        acks.sent(7);
        acks.sent(8);
        assert_eq!(
            at_most_once.try_recv(),
            Ok(Ok(())),
            "QoS 0 is done once sent"
        );
        assert!(at_least_once.try_recv().is_err(), "QoS 1 waits for PUBACK");
        // PUBCOMP of 8 completes the QoS 2 message, not the QoS 1 one.
        acks.acknowledged(8);
        assert_eq!(exactly_once.try_recv(), Ok(Ok(())));
        assert!(at_least_once.try_recv().is_err());
        // An acknowledgement nobody waits for changes nothing.
        acks.acknowledged(99);
        // The connection drops: the waiting publisher learns it.
        acks.fail_all("connection lost");
        assert_eq!(
            at_least_once.try_recv(),
            Ok(Err("connection lost".to_string()))
        );
    }

    #[tokio::test]
    async fn a_publish_refused_by_a_closed_client_leaves_no_waiter_behind() {
        let (client, event_loop) = client();
        drop(event_loop);
        let acks = Acks::default();
        let refused = acks
            .publish(&client, "a".into(), QoS::AtLeastOnce, vec![])
            .await;
        assert!(refused.is_err());
        assert!(
            acks.queued.lock().unwrap().is_empty(),
            "a later publish would be matched to the refused one's id"
        );
    }
}
