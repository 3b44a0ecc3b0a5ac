//! Outbound Redis for both interface generations: `fermyon:spin/redis@2.0.0`
//! (Spin SDK 5) and `spin:redis/redis@3.0.0` (SDK 6/7).
//!
//! A component may open only `redis://` addresses its `allowed_outbound_hosts`
//! grant. Connections are shared: multiplexed, self-reconnecting connections
//! (the redis crate's `ConnectionManager`) kept for the whole process, one
//! per server and thread, handed to every instance on that thread that opens
//! the server, so a request costs no TCP handshake and its commands are sent
//! and answered on the thread it runs on (a connection shared across threads
//! woke its owner's thread for every command). A server that is down is an
//! `other` error for the guest, never a failure of the gateway.

mod v2;
mod v3;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use wasmtime::component::{HasData, Linker, ResourceTable};

use super::allowed_hosts::AllowedHosts;
use super::connections::{Lease, PerThread, Pool, PoolFull};
use super::{Capability, Grantee, HostState};

/// How long connecting to a server may take before the guest gets an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Servers (by [`ServerKey`]) the process keeps connections to at once.
const MAX_SERVERS: usize = 16;

/// The process-wide connections, shared by every app generation, by what
/// identifies the server and the identity used (see [`ServerKey`]).
pub struct RedisConnections {
    pool: Pool<ServerKey, Server>,
}

impl Default for RedisConnections {
    fn default() -> Self {
        Self {
            pool: Pool::new(MAX_SERVERS),
        }
    }
}

/// The servers one app generation uses.
pub type RedisLease = Lease<ServerKey, Server>;

/// One server's connections, one per thread that used it.
pub struct Server {
    client: redis::Client,
    connections: PerThread<ConnectionManager>,
}

/// Server address, credentials, database and protocol: two addresses that
/// differ only in spelling (`redis://h:6379` and `redis://h:6379/0?x=1`) share
/// one connection, so a component cannot open one per spelling.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServerKey(String);

impl ServerKey {
    fn of(info: &redis::ConnectionInfo) -> Self {
        let settings = info.redis_settings();
        Self(format!(
            "{:?}\n{:?}\n{:?}\n{}\n{:?}",
            info.addr(),
            settings.username(),
            settings.password(),
            settings.db(),
            settings.protocol()
        ))
    }
}

impl RedisConnections {
    /// Connections open now (for metrics).
    pub fn open_count(&self) -> usize {
        let servers = self.pool.live_values();
        servers.iter().map(|s| s.connections.count()).sum()
    }

    /// This thread's connection to the server `info` names, `server` being
    /// its `host:port` for error texts.
    async fn connect(
        &self,
        lease: &RedisLease,
        info: redis::ConnectionInfo,
        server: &str,
    ) -> Result<ConnectionManager, Failure> {
        let entry = lease
            .get_or_connect(&self.pool, ServerKey::of(&info), || async {
                let client = redis::Client::open(info).map_err(|_| Failure::InvalidAddress)?;
                let first = manage(&client, server).await?;
                Ok::<_, Failure>(Server {
                    client,
                    connections: PerThread::new(first),
                })
            })
            .await?;
        entry
            .connections
            .get_or_make(|| manage(&entry.client, server))
            .await
    }
}

/// A new connection to `client`'s server, its driver task on this thread.
async fn manage(client: &redis::Client, server: &str) -> Result<ConnectionManager, Failure> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1);
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|e| unreachable(server, &e))
}

/// What one instance may reach.
#[derive(Clone)]
pub struct Redis {
    component_id: Arc<str>,
    allowed: Arc<AllowedHosts>,
    connections: Arc<RedisConnections>,
    lease: Arc<RedisLease>,
}

impl Redis {
    fn new(
        component_id: Arc<str>,
        allowed: Arc<AllowedHosts>,
        connections: Arc<RedisConnections>,
        lease: Arc<RedisLease>,
    ) -> Self {
        Self {
            component_id,
            allowed,
            connections,
            lease,
        }
    }

    /// Checks the grant, then connects (or reuses the shared connection).
    async fn open(&self, address: &str) -> Result<RedisConnection, Failure> {
        let info = redis::IntoConnectionInfo::into_connection_info(address)
            .map_err(|_| Failure::InvalidAddress)?;
        let (host, port) = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
            _ => return Err(Failure::InvalidAddress),
        };
        let scheme = address.split("://").next().unwrap_or("redis");
        if !self.allowed.allows(scheme, &host, Some(port)) {
            let server = format!("{host}:{port}");
            crate::metrics::global()
                .outbound
                .call("redis", &server, false);
            tracing::warn!(
                component = &*self.component_id,
                address = %host,
                port,
                "Redis connection denied: not granted by allowed_outbound_hosts"
            );
            return Err(Failure::InvalidAddress);
        }
        let server = format!("{host}:{port}");
        let manager = self.connections.connect(&self.lease, info, &server).await?;
        Ok(RedisConnection {
            manager,
            server: server.into(),
        })
    }
}

/// An open connection, as kept in the instance's resource table.
pub struct RedisConnection {
    manager: ConnectionManager,
    /// `host:port`, for error texts (the address may carry a password).
    server: Arc<str>,
}

/// A failed operation, before it is mapped to either generation's `error`.
#[derive(Debug)]
enum Failure {
    InvalidAddress,
    TypeError,
    Other(String),
    TooManyConnections,
}

impl From<PoolFull> for Failure {
    fn from(full: PoolFull) -> Self {
        tracing::warn!("outbound Redis: {full}");
        Failure::TooManyConnections
    }
}

/// One text for "the server is not there", whether connecting or mid-command:
/// `other("127.0.0.1:6379: cannot reach the Redis server (...)")`.
fn unreachable(server: &str, e: &redis::RedisError) -> Failure {
    Failure::Other(format!("{server}: cannot reach the Redis server ({e})"))
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Self {
        let text = e.to_string();
        if e.kind() == redis::ErrorKind::UnexpectedReturnType
            || text.contains("WRONGTYPE")
            || text.contains("not an integer")
        {
            Failure::TypeError
        } else {
            Failure::Other(text)
        }
    }
}

/// One value of an `execute` reply, flattened.
enum Reply {
    Nil,
    Status(String),
    Int(i64),
    Binary(Vec<u8>),
}

fn flatten(value: redis::Value, out: &mut Vec<Reply>) {
    use redis::Value;
    match value {
        Value::Nil => out.push(Reply::Nil),
        Value::Int(i) => out.push(Reply::Int(i)),
        Value::BulkString(bytes) => out.push(Reply::Binary(bytes)),
        Value::SimpleString(s) => out.push(Reply::Status(s)),
        Value::Okay => out.push(Reply::Status("OK".into())),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(item, out);
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                flatten(k, out);
                flatten(v, out);
            }
        }
        Value::Double(d) => out.push(Reply::Status(d.to_string())),
        Value::Boolean(b) => out.push(Reply::Int(b.into())),
        other => out.push(Reply::Status(format!("{other:?}"))),
    }
}

/// An `execute` argument.
enum Argument {
    Int(i64),
    Binary(Vec<u8>),
}

impl RedisConnection {
    async fn query<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, Failure> {
        let mut connection = self.manager.clone();
        let mut result = command.query_async(&mut connection).await;
        // A connection keeps the outcome of its last reconnection attempt, so
        // after the server was down its next command would fail even though
        // the server is back; that failure started a new attempt. A refusal
        // means the command never left, so it is safe to send it once more.
        if result.as_ref().is_err_and(|e| e.is_connection_refusal()) {
            result = command.query_async(&mut connection).await;
        }
        crate::metrics::global()
            .outbound
            .call("redis", &self.server, result.is_ok());
        result.map_err(|e| {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
            {
                unreachable(&self.server, &e)
            } else {
                Failure::from(e)
            }
        })
    }

    async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), Failure> {
        let _: i64 = self
            .query(redis::cmd("PUBLISH").arg(channel).arg(payload).clone())
            .await?;
        Ok(())
    }

    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, Failure> {
        self.query(redis::cmd("GET").arg(key).clone()).await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Failure> {
        let _: () = self
            .query(redis::cmd("SET").arg(key).arg(value).clone())
            .await?;
        Ok(())
    }

    async fn incr(&self, key: String) -> Result<i64, Failure> {
        self.query(redis::cmd("INCR").arg(key).clone()).await
    }

    async fn del(&self, keys: Vec<String>) -> Result<u32, Failure> {
        self.query(redis::cmd("DEL").arg(keys).clone()).await
    }

    async fn sadd(&self, key: String, values: Vec<String>) -> Result<u32, Failure> {
        self.query(redis::cmd("SADD").arg(key).arg(values).clone())
            .await
    }

    async fn smembers(&self, key: String) -> Result<Vec<String>, Failure> {
        self.query(redis::cmd("SMEMBERS").arg(key).clone()).await
    }

    async fn srem(&self, key: String, values: Vec<String>) -> Result<u32, Failure> {
        self.query(redis::cmd("SREM").arg(key).arg(values).clone())
            .await
    }

    async fn execute(
        &self,
        command: String,
        arguments: Vec<Argument>,
    ) -> Result<Vec<Reply>, Failure> {
        let mut cmd = redis::cmd(&command);
        for argument in arguments {
            match argument {
                Argument::Int(i) => cmd.arg(i),
                Argument::Binary(bytes) => cmd.arg(bytes),
            };
        }
        let value: redis::Value = self.query(cmd).await?;
        let mut replies = Vec::new();
        flatten(value, &mut replies);
        Ok(replies)
    }
}

/// What the generated bindings see of the store data.
pub struct RedisView<'a> {
    table: &'a mut ResourceTable,
    redis: &'a Redis,
}

struct RedisCapability;

impl HasData for RedisCapability {
    type Data<'a> = RedisView<'a>;
}

fn view(state: &mut HostState) -> RedisView<'_> {
    RedisView {
        table: &mut state.table,
        redis: &state.grants.redis,
    }
}

impl Capability for Redis {
    const INTERFACES: &'static [&'static str] =
        &["fermyon:spin/redis@2.0.0", "spin:redis/redis@3.0.0"];
    /// The connections this generation opened stay open while it lives.
    type Generation = RedisLease;

    fn grant(component: &Grantee<'_>, lease: &Arc<RedisLease>) -> Result<Self> {
        Ok(Self::new(
            component.id.clone(),
            component.allowed_hosts.clone(),
            component.resources.redis.clone(),
            lease.clone(),
        ))
    }

    fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::bindings::fermyon::spin::redis::add_to_linker::<HostState, RedisCapability>(
            linker, view,
        )
        .map_err(anyhow::Error::from)?;
        Ok(())
    }

    fn add_async_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::bindings::spin::redis::redis::add_to_linker::<HostState, RedisCapability>(
            linker, view,
        )
        .map_err(anyhow::Error::from)?;
        Ok(())
    }
}
