//! One pub/sub message on a fresh instance: wait for an instance slot (the
//! same process-wide bound HTTP uses, so messages and requests share the
//! pool instead of exhausting it), build the store, run the call against a
//! deadline. Every instance yields at each epoch tick, so the deadline stops
//! even a guest that spins.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;

use crate::executor::PreparedComponent;
use crate::host::HostState;

/// Runs `call` on a fresh instance of `component`; counts the instance's
/// failure (an error from `call`: a trap, or a host error that ended it) or
/// its timeout.
pub async fn run<T>(
    component: &PreparedComponent,
    instances: &Arc<Semaphore>,
    deadline: Option<Duration>,
    call: impl AsyncFnOnce(&mut Store<HostState>) -> Result<T>,
) -> Result<T> {
    let _slot = slot(instances).await?;
    let mut store = component.new_store()?;
    let result = match deadline {
        None => call(&mut store).await,
        Some(deadline) => match tokio::time::timeout(deadline, call(&mut store)).await {
            Ok(result) => result,
            Err(_) => {
                component.metrics.timeouts.inc();
                anyhow::bail!("timed out after {deadline:?}; instance stopped")
            }
        },
    };
    if result.is_err() {
        component.metrics.traps.inc();
    }
    result
}

/// One of the process-wide instance slots, waiting (and counting the wait)
/// while all are in use.
pub async fn slot(instances: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit> {
    if let Ok(permit) = instances.clone().try_acquire_owned() {
        return Ok(permit);
    }
    crate::metrics::global().instances.waits.inc();
    instances
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| anyhow::anyhow!("the gateway is shutting down"))
}
