//! The answer to a change of the running app (`push bundle`, `rollback`):
//! `{"ok": true, "generation", "app", "version", "message", "timings_ms"}` or
//! `{"ok": false, "error"}`, printed for people or as gatewayd's JSON, and
//! turned into gatewayctl's exit status.

use anyhow::{Result, anyhow};
use gatewayd::admin::api::Applied;

use crate::admin_client::Reply;

/// `{done}: app "hello" version 1.0.1 is generation 4 (upload 12 ms, ...)`
pub fn line(applied: &Applied, done: &str) -> String {
    let mut about = Vec::new();
    if let Some(app) = &applied.app {
        about.push(format!("app {app:?}"));
    }
    if let Some(version) = &applied.version {
        about.push(format!("version {version}"));
    }
    if let Some(generation) = applied.generation {
        about.push(format!("is generation {generation}"));
    }
    let timings = applied
        .timings_ms
        .steps()
        .into_iter()
        .filter_map(|(step, ms)| ms.map(|ms| format!("{step} {ms} ms")))
        .collect::<Vec<_>>()
        .join(", ");
    if !timings.is_empty() {
        about.push(format!("({timings})"));
    }
    if about.is_empty() {
        done.to_string()
    } else {
        format!("{done}: {}", about.join(" "))
    }
}

/// Prints the outcome of `what` (e.g. "POST /v1/bundles"): `done` names a
/// success ("applied", "rolled back"). A rejection is the error returned, so
/// that gatewayctl exits non-zero with gatewayd's reason.
pub fn report(reply: &Reply, what: &str, done: &str, json: bool) -> Result<()> {
    let ok = reply.status.is_success() && reply.json["ok"] == true;
    if json {
        reply.print_raw();
    }
    if !ok {
        return Err(rejection(reply));
    }
    if !json {
        let applied: Applied = reply.parse(what)?;
        println!("{}", line(&applied, done));
        if !applied.message.trim().is_empty() {
            println!("  {}", applied.message.trim());
        }
    }
    Ok(())
}

/// The error for an answer that is not `ok`.
pub fn rejection(reply: &Reply) -> anyhow::Error {
    let reason = reply.error_message();
    if reply.status.is_server_error() {
        anyhow!("gatewayd failed: {reason}")
    } else if reply.status == hyper::StatusCode::NOT_FOUND {
        anyhow!("{reason} (is gatewayd older than this gatewayctl?)")
    } else {
        anyhow!("rejected: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_line() {
        let applied: Applied = serde_json::from_str(
            r#"{"ok": true, "generation": 4, "app": "hello", "version": "1.0.1", "message": "",
               "timings_ms": {"switch": 1, "upload": 12, "verify": 3, "unpack": 4,
                              "compile": 250, "health": 8, "future": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            line(&applied, "applied"),
            "applied: app \"hello\" version 1.0.1 is generation 4 (upload 12 ms, verify 3 ms, \
             unpack 4 ms, compile 250 ms, health 8 ms, switch 1 ms)"
        );
        let rollback: Applied = serde_json::from_str(
            r#"{"ok": true, "generation": 3, "app": "hello", "version": "1.0.0",
               "message": "back to generation 3", "timings_ms": {"switch": 2}}"#,
        )
        .unwrap();
        assert_eq!(
            line(&rollback, "rolled back"),
            "rolled back: app \"hello\" version 1.0.0 is generation 3 (switch 2 ms)"
        );
        let bare: Applied = serde_json::from_str(r#"{"ok": true}"#).unwrap();
        assert_eq!(line(&bare, "applied"), "applied");
    }
}
