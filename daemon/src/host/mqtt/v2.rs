//! `fermyon:spin/mqtt@2.0.0` (Spin SDK 5): blocking to the guest, async on
//! the host.

use rumqttc::QoS;
use wasmtime::component::Resource;

use super::{Failure, MqttConnection, MqttView};
use crate::host::bindings::fermyon::spin::mqtt::{Error, Host, HostConnection, Qos};

type Outcome<T> = wasmtime::Result<Result<T, Error>>;

fn to_error(failure: Failure) -> Error {
    match failure {
        Failure::InvalidAddress => Error::InvalidAddress,
        Failure::ConnectionFailed(message) => Error::ConnectionFailed(message),
        Failure::Other(message) => Error::Other(message),
        Failure::TooManyConnections => Error::TooManyConnections,
    }
}

fn qos(qos: Qos) -> QoS {
    match qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

impl Host for MqttView<'_> {}

impl HostConnection for MqttView<'_> {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive: u64,
    ) -> Outcome<Resource<MqttConnection>> {
        match self
            .mqtt
            .open(&address, &username, &password, keep_alive)
            .await
        {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(failure) => Ok(Err(to_error(failure))),
        }
    }

    async fn publish(
        &mut self,
        c: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        level: Qos,
    ) -> Outcome<()> {
        let connection = self.table.get(&c)?.clone();
        Ok(connection
            .publish(topic, payload, qos(level))
            .await
            .map_err(to_error))
    }

    async fn drop(&mut self, c: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
