//! `fermyon:spin/redis@2.0.0` (Spin SDK 5): blocking to the guest, async on
//! the host.

use wasmtime::component::Resource;

use super::{Argument, Failure, RedisConnection, RedisView, Reply};
use crate::host::bindings::fermyon::spin::redis::{
    Error, Host, HostConnection, RedisParameter, RedisResult,
};

type Outcome<T> = wasmtime::Result<Result<T, Error>>;

fn to_error(failure: Failure) -> Error {
    match failure {
        Failure::InvalidAddress => Error::InvalidAddress,
        Failure::TypeError => Error::TypeError,
        Failure::Other(message) => Error::Other(message),
        Failure::TooManyConnections => Error::TooManyConnections,
    }
}

impl RedisView<'_> {
    fn connection(&self, handle: &Resource<RedisConnection>) -> wasmtime::Result<RedisConnection> {
        let open = self.table.get(handle)?;
        Ok(RedisConnection {
            manager: open.manager.clone(),
            server: open.server.clone(),
        })
    }
}

impl Host for RedisView<'_> {}

impl HostConnection for RedisView<'_> {
    async fn open(&mut self, address: String) -> Outcome<Resource<RedisConnection>> {
        match self.redis.open(&address).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(failure) => Ok(Err(to_error(failure))),
        }
    }

    async fn publish(
        &mut self,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Outcome<()> {
        Ok(self
            .connection(&c)?
            .publish(channel, payload)
            .await
            .map_err(to_error))
    }

    async fn get(&mut self, c: Resource<RedisConnection>, key: String) -> Outcome<Option<Vec<u8>>> {
        Ok(self.connection(&c)?.get(key).await.map_err(to_error))
    }

    async fn set(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Outcome<()> {
        Ok(self.connection(&c)?.set(key, value).await.map_err(to_error))
    }

    async fn incr(&mut self, c: Resource<RedisConnection>, key: String) -> Outcome<i64> {
        Ok(self.connection(&c)?.incr(key).await.map_err(to_error))
    }

    async fn del(&mut self, c: Resource<RedisConnection>, keys: Vec<String>) -> Outcome<u32> {
        Ok(self.connection(&c)?.del(keys).await.map_err(to_error))
    }

    async fn sadd(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Outcome<u32> {
        Ok(self
            .connection(&c)?
            .sadd(key, values)
            .await
            .map_err(to_error))
    }

    async fn smembers(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> Outcome<Vec<String>> {
        Ok(self.connection(&c)?.smembers(key).await.map_err(to_error))
    }

    async fn srem(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Outcome<u32> {
        Ok(self
            .connection(&c)?
            .srem(key, values)
            .await
            .map_err(to_error))
    }

    async fn execute(
        &mut self,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Outcome<Vec<RedisResult>> {
        let arguments = arguments
            .into_iter()
            .map(|a| match a {
                RedisParameter::Int64(i) => Argument::Int(i),
                RedisParameter::Binary(b) => Argument::Binary(b),
            })
            .collect();
        let replies = self.connection(&c)?.execute(command, arguments).await;
        Ok(replies
            .map(|replies| {
                replies
                    .into_iter()
                    .map(|r| match r {
                        Reply::Nil => RedisResult::Nil,
                        Reply::Status(s) => RedisResult::Status(s),
                        Reply::Int(i) => RedisResult::Int64(i),
                        Reply::Binary(b) => RedisResult::Binary(b),
                    })
                    .collect()
            })
            .map_err(to_error))
    }

    async fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
