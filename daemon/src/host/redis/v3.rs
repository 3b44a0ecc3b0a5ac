//! `spin:redis/redis@3.0.0` (Spin SDK 6/7): async functions with access to
//! the store.

use wasmtime::component::{Accessor, Resource};

use super::{Argument, Failure, RedisCapability, RedisConnection, RedisView, Reply};
use crate::host::bindings::spin::redis::redis::{
    Error, Host, HostConnection, HostConnectionWithStore, RedisParameter, RedisResult,
};

fn to_error(failure: Failure) -> Error {
    match failure {
        Failure::InvalidAddress => Error::InvalidAddress,
        Failure::TypeError => Error::TypeError,
        Failure::Other(message) => Error::Other(message),
        Failure::TooManyConnections => Error::TooManyConnections,
    }
}

fn connection<T>(
    accessor: &Accessor<T, RedisCapability>,
    handle: &Resource<RedisConnection>,
) -> Result<RedisConnection, Error> {
    accessor
        .with(|mut access| {
            access.get().table.get(handle).map(|open| RedisConnection {
                manager: open.manager.clone(),
                server: open.server.clone(),
            })
        })
        .map_err(|e| Error::Other(format!("not an open connection: {e}")))
}

impl Host for RedisView<'_> {}

impl HostConnection for RedisView<'_> {
    fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl<T> HostConnectionWithStore<T> for RedisCapability {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<RedisConnection>, Error> {
        let redis = accessor.with(|mut access| access.get().redis.clone());
        let connection = redis.open(&address).await.map_err(to_error)?;
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
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), Error> {
        connection(accessor, &c)?
            .publish(channel, payload)
            .await
            .map_err(to_error)
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        connection(accessor, &c)?.get(key).await.map_err(to_error)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        connection(accessor, &c)?
            .set(key, value)
            .await
            .map_err(to_error)
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, Error> {
        connection(accessor, &c)?.incr(key).await.map_err(to_error)
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, Error> {
        connection(accessor, &c)?.del(keys).await.map_err(to_error)
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        connection(accessor, &c)?
            .sadd(key, values)
            .await
            .map_err(to_error)
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, Error> {
        connection(accessor, &c)?
            .smembers(key)
            .await
            .map_err(to_error)
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        connection(accessor, &c)?
            .srem(key, values)
            .await
            .map_err(to_error)
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, Error> {
        let arguments = arguments
            .into_iter()
            .map(|a| match a {
                RedisParameter::Int64(i) => Argument::Int(i),
                RedisParameter::Binary(b) => Argument::Binary(b),
            })
            .collect();
        let replies = connection(accessor, &c)?
            .execute(command, arguments)
            .await
            .map_err(to_error)?;
        Ok(replies
            .into_iter()
            .map(|r| match r {
                Reply::Nil => RedisResult::Nil,
                Reply::Status(s) => RedisResult::Status(s),
                Reply::Int(i) => RedisResult::Int64(i),
                Reply::Binary(b) => RedisResult::Binary(b),
            })
            .collect())
    }
}
