//! `spin:mqtt/mqtt@3.0.0` (Spin SDK 6/7): async functions with access to the
//! store.

use rumqttc::QoS;
use wasmtime::component::{Accessor, Resource};

use super::{Failure, MqttCapability, MqttConnection, MqttView};
use crate::host::bindings::spin::mqtt::mqtt::{
    Error, Host, HostConnection, HostConnectionWithStore, Qos,
};

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
    fn drop(&mut self, c: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl<T> HostConnectionWithStore<T> for MqttCapability {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive: u64,
    ) -> Result<Resource<MqttConnection>, Error> {
        let mqtt = accessor.with(|mut access| access.get().mqtt.clone());
        let connection = mqtt
            .open(&address, &username, &password, keep_alive)
            .await
            .map_err(to_error)?;
        accessor.with(|mut access| {
            access
                .get()
                .table
                .push(connection)
                .map_err(|_| Error::TooManyConnections)
        })
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        c: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        level: Qos,
    ) -> Result<(), Error> {
        let connection = accessor
            .with(|mut access| access.get().table.get(&c).cloned())
            .map_err(|e| Error::Other(format!("not an open connection: {e}")))?;
        connection
            .publish(topic, payload, qos(level))
            .await
            .map_err(to_error)
    }
}
