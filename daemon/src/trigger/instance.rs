//! One pub/sub message on a fresh instance: wait for an instance slot (the
//! same process-wide bound HTTP uses, so messages and requests share the
//! pool instead of exhausting it), build the store, run the call against a
//! deadline. Every instance yields at each epoch tick, so the deadline stops
//! even a guest that spins.

use std::time::Duration;

use anyhow::Result;
use tokio::sync::Semaphore;
use wasmtime::Store;

use crate::executor::PreparedComponent;
use crate::host::HostState;

pub async fn run<T>(
    component: &PreparedComponent,
    instances: &Semaphore,
    deadline: Option<Duration>,
    call: impl AsyncFnOnce(&mut Store<HostState>) -> Result<T>,
) -> Result<T> {
    let _slot = instances
        .acquire()
        .await
        .map_err(|_| anyhow::anyhow!("the gateway is shutting down"))?;
    let mut store = component.new_store()?;
    match deadline {
        None => call(&mut store).await,
        Some(deadline) => match tokio::time::timeout(deadline, call(&mut store)).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("timed out after {deadline:?}; instance stopped"),
        },
    }
}
