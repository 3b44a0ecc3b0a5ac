//! `gatewayctl status`: what gatewayd runs (`GET /v1/status`): the app, its
//! version and generation, uptime, triggers, the last update's outcome, what
//! it did in the last minute, the code each component runs, and whether the
//! gateway can compile.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use gatewayd::admin::api::{Activity, Status};
use hyper::Method;

use crate::admin_client::{self, Client, Connection};
use crate::outcome;

/// gatewayd answers status at once, even while it applies an update.
const TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(connection: &Connection, json: bool) -> Result<()> {
    let client = Client::new(connection)?;
    let reply = admin_client::block_on(client.call(Method::GET, "/v1/status", TIMEOUT))?;
    if json {
        reply.print_raw();
    }
    if !reply.status.is_success() {
        return Err(outcome::rejection(&reply));
    }
    if !json {
        let status: Status = reply.parse("GET /v1/status")?;
        println!("{}", line(&status, SystemTime::now()));
        if let Some(activity) = &status.last_minute {
            println!("{}", activity_line(activity));
        }
        for line in component_lines(&status) {
            println!("  {line}");
        }
        if let Some(line) = engine_line(&status) {
            println!("{line}");
        }
        if let Some(line) = fleet_source_line(&status) {
            println!("{line}");
        }
    }
    Ok(())
}

/// `fleet: following oci://r/hello:stable, at sha256:... (applied)`, and
/// the last check's failure while it fails.
pub fn fleet_source_line(status: &Status) -> Option<String> {
    let source = status.fleet_source.as_ref()?;
    let mut line = format!("fleet: following {}", source.source);
    if let (Some(digest), Some(outcome)) = (&source.digest, &source.outcome) {
        line += &format!(", at {digest} ({outcome})");
    }
    if let Some(error) = &source.error {
        line += &format!("; the last check failed: {error}");
    }
    Some(line)
}

/// `app "hello" version 1.0.0 (generation 3), up 12s; triggers: 1 http,
/// 0 redis, 0 mqtt; last update: ok 1.0.1 5m ago: ...`
pub fn line(status: &Status, now: SystemTime) -> String {
    let mut line = match &status.app {
        None => "no app installed".to_string(),
        Some(app) => {
            let mut line = format!("app {app:?}");
            if let Some(version) = &status.version {
                line += &format!(" version {version}");
            }
            if let Some(generation) = status.generation {
                line += &format!(" (generation {generation})");
            }
            line
        }
    };
    line += &format!(", up {}", duration(status.uptime_secs));
    if status.app.is_some() {
        let t = &status.triggers;
        let mut kinds = vec![
            format!("{} http", t.http),
            format!("{} redis", t.redis),
            format!("{} mqtt", t.mqtt),
        ];
        kinds.extend(t.other.iter().map(|(kind, n)| format!("{n} {kind}")));
        line += &format!("; triggers: {}", kinds.join(", "));
    }
    line += "; last update: ";
    match &status.last_update {
        None => line += "none",
        Some(last) => {
            line += &last.result;
            if let Some(version) = &last.version {
                line += &format!(" {version}");
            }
            if let Some(at) = last.at_unix {
                let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                line += &format!(" {} ago", duration(now.saturating_sub(at)));
            }
            if !last.message.trim().is_empty() {
                line += &format!(": {}", last.message.trim());
            }
        }
    }
    line
}

/// `last minute: 1204 requests (3 server errors, p99 12.5 ms), 40 messages
/// (1 failed), 2 traps, 0 timeouts`; "last 35s" while the gateway is younger
/// than a minute.
pub fn activity_line(a: &Activity) -> String {
    let span = match a.window_secs {
        Some(secs) if secs < 60 => format!("last {}", duration(secs)),
        _ => "last minute".to_string(),
    };
    let mut http = format!(
        "{} ({}",
        count(a.http_requests, "request"),
        count(a.http_server_errors, "server error")
    );
    if let Some(p99) = a.http_p99_ms {
        http += &format!(", p99 {p99} ms");
    }
    format!(
        "{span}: {http}), {} ({} failed), {}, {}",
        count(a.messages, "message"),
        a.messages_failed,
        count(a.traps, "trap"),
        count(a.timeouts, "timeout"),
    )
}

/// `1 trap`, `2 traps`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `component "hello": native aarch64 code, from the cache`, one per
/// component, with the reason when it fell back to Pulley.
pub fn component_lines(status: &Status) -> Vec<String> {
    status
        .components
        .iter()
        .map(|c| {
            let from = match c.from.as_str() {
                "cache" => "from the cache",
                "compiled" => "compiled at load",
                other => other,
            };
            let mut line = format!("component {:?}: {}, {from}", c.id, c.runs_on);
            if let Some(reason) = &c.fallback_reason {
                line += &format!(" ({reason})");
            }
            line
        })
        .collect()
}

/// `engine: native aarch64 code, compiles components`, or for a runtime-only
/// build what it accepts instead.
pub fn engine_line(status: &Status) -> Option<String> {
    let engine = status.engine.as_ref()?;
    Some(if engine.compiles {
        format!("engine: {}, compiles components", engine.runs)
    } else {
        format!(
            "engine: {}, runtime only: cannot compile, accepts only bundles with code for {} \
             (gatewayctl bundle --target {})",
            engine.runs, engine.target, engine.target
        )
    })
}

/// 12s, 5m 3s, 2h 1m, 3d 4h: the two largest units.
pub fn duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0 || first == 3)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> Status {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_runtime_only_gateway_says_what_it_accepts() {
        let runtime_only = status(
            r#"{"app": null, "last_update": null, "engine": {"runs": "native aarch64 code",
               "compiles": false, "target": "aarch64-unknown-linux-gnu"}}"#,
        );
        assert_eq!(
            engine_line(&runtime_only).unwrap(),
            "engine: native aarch64 code, runtime only: cannot compile, accepts only bundles \
             with code for aarch64-unknown-linux-gnu (gatewayctl bundle --target \
             aarch64-unknown-linux-gnu)"
        );
        let older = status(r#"{"app": null, "last_update": null}"#);
        assert_eq!(engine_line(&older), None);
    }

    #[test]
    fn lines() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_300);
        let running = status(
            r#"{"app": "hello", "version": "1.0.0", "generation": 3, "uptime_secs": 12,
               "triggers": {"http": 1, "redis": 0, "mqtt": 0},
               "last_update": {"result": "ok", "message": "applied", "version": "1.0.0",
                               "at_unix": 1700000000}}"#,
        );
        assert_eq!(
            line(&running, now),
            "app \"hello\" version 1.0.0 (generation 3), up 12s; \
             triggers: 1 http, 0 redis, 0 mqtt; last update: ok 1.0.0 5m ago: applied"
        );
        let empty = status(
            r#"{"app": null, "version": null, "generation": null, "uptime_secs": 3725,
               "triggers": {"http": 0, "redis": 0, "mqtt": 0}, "last_update": null}"#,
        );
        assert_eq!(
            line(&empty, now),
            "no app installed, up 1h 2m; last update: none"
        );
        let rejected = status(
            r#"{"app": null, "uptime_secs": 0, "triggers": {"http": 0, "redis": 0, "mqtt": 0},
               "last_update": {"result": "rejected", "message": "bad signature",
                               "version": null, "at_unix": 1700000300}}"#,
        );
        assert_eq!(
            line(&rejected, now),
            "no app installed, up 0s; last update: rejected 0s ago: bad signature"
        );
    }

    #[test]
    fn activity() {
        let busy = Activity {
            window_secs: Some(60),
            http_requests: 1204,
            http_server_errors: 3,
            http_p99_ms: Some(12.5),
            messages: 40,
            messages_failed: 1,
            traps: 2,
            timeouts: 0,
        };
        assert_eq!(
            activity_line(&busy),
            "last minute: 1204 requests (3 server errors, p99 12.5 ms), 40 messages \
             (1 failed), 2 traps, 0 timeouts"
        );
        let young = Activity {
            window_secs: Some(35),
            http_requests: 1,
            traps: 1,
            timeouts: 1,
            messages: 1,
            http_server_errors: 1,
            ..Activity::default()
        };
        assert_eq!(
            activity_line(&young),
            "last 35s: 1 request (1 server error), 1 message (0 failed), 1 trap, 1 timeout"
        );
    }

    #[test]
    fn lines_per_component() {
        let running = status(
            r#"{"app": "hello", "version": "1.0.0", "generation": 3, "last_update": null,
               "components": [
                 {"id": "hello", "runs_on": "native aarch64 code", "from": "cache"},
                 {"id": "probe", "runs_on": "Pulley interpreter (pulley64)", "from": "compiled",
                  "fallback_reason": "Cranelift crashed making native riscv64 code of it"}]}"#,
        );
        assert_eq!(
            component_lines(&running),
            [
                "component \"hello\": native aarch64 code, from the cache",
                "component \"probe\": Pulley interpreter (pulley64), compiled at load \
                 (Cranelift crashed making native riscv64 code of it)"
            ]
        );
        // A gatewayd that does not report components yet.
        assert!(component_lines(&status(r#"{"app": null, "last_update": null}"#)).is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(60), "1m");
        assert_eq!(duration(303), "5m 3s");
        assert_eq!(duration(7260), "2h 1m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(duration(86_400 + 59), "1d");
    }
}
