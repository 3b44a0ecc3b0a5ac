//! `gatewayctl rollback`: asks gatewayd to go back to the previous generation
//! of the app (`POST /v1/rollback`) and prints the outcome.

use std::time::Duration;

use anyhow::Result;
use hyper::Method;

use crate::admin_client::{self, Client, Connection};
use crate::outcome;

/// The previous generation is compiled already, but gatewayd still checks
/// its health before switching.
const APPLY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

pub fn run(connection: &Connection, json: bool) -> Result<()> {
    let client = Client::new(connection)?;
    let reply = admin_client::block_on(client.call(Method::POST, "/v1/rollback", APPLY_TIMEOUT))?;
    outcome::report(&reply, "POST /v1/rollback", "rolled back", json)
}
