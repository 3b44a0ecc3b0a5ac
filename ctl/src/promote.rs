//! `gatewayctl fleet promote --from oci://R/REPO:canary --to stable`: moves
//! the artifact a canary tag points at to another tag of the repository,
//! for the gateways that follow that one, but only if every gateway that
//! follows the canary tag says (in its fleet status at the MQTT broker) it
//! runs that artifact, took it without a refusal, has been healthy for
//! `--healthy-for`, and answered no request with a server error or trapped
//! in its last minute. Nothing reporting is a refusal too: no one vouches.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use gatewayd::fleet::reference::OciReference;
use gatewayd::fleet::registry::Registry;
use gatewayd::fleet::status::FleetMessage;

use crate::fleet::BrokerArgs;
use crate::publish::RegistryArgs;

pub struct Promotion<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub healthy_for: Duration,
    pub broker: &'a BrokerArgs,
    pub registry: &'a RegistryArgs,
}

pub fn run(p: &Promotion) -> Result<()> {
    let from = OciReference::parse(p.from).map_err(|e| anyhow!("--from {:?}: {e}", p.from))?;
    let to = match p.to.strip_prefix("oci://") {
        None => from.with_tag(p.to),
        Some(_) => OciReference::parse(p.to).map_err(|e| anyhow!("--to {:?}: {e}", p.to))?,
    };
    OciReference::parse(&to.to_string()).map_err(|e| anyhow!("--to {:?}: {e}", p.to))?;
    if (&to.registry, &to.repository) != (&from.registry, &from.repository) {
        return Err(anyhow!(
            "--to {to}: promote moves a tag within one repository ({}/{})",
            from.registry,
            from.repository
        ));
    }
    if to.tag == from.tag {
        return Err(anyhow!("--from and --to are the same tag"));
    }
    let credentials = crate::publish::credentials(&from, p.registry)?;
    let registry = Registry::new(&from, p.registry.insecure, credentials)?;
    crate::admin_client::block_on(async {
        let digest = registry.tag_digest().await?;
        let gateways = crate::fleet::collect(p.broker).await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let canaries = verdict(&gateways, &from.to_string(), &digest, p.healthy_for, now).map_err(
            |problems| {
                anyhow!(
                    "refused to promote {from} ({digest}) to {to}:\n  {}",
                    problems.join("\n  ")
                )
            },
        )?;
        registry.retag(&digest, &to.tag).await?;
        println!(
            "promoted: {to} is now {digest} (from {from}; {canaries} canary gateway{} on it, \
             healthy for at least {})",
            if canaries == 1 { "" } else { "s" },
            humantime::format_duration(p.healthy_for)
        );
        Ok(())
    })
}

/// How many gateways follow `from` and vouch for `digest`, or what is wrong
/// with each that does not.
fn verdict(
    gateways: &[FleetMessage],
    from: &str,
    digest: &str,
    healthy_for: Duration,
    now: u64,
) -> Result<usize, Vec<String>> {
    let canaries: Vec<&FleetMessage> = gateways
        .iter()
        .filter(|g| {
            g.status
                .as_ref()
                .and_then(|s| s.fleet_source.as_ref())
                .is_some_and(|f| f.source == from)
        })
        .collect();
    if canaries.is_empty() {
        return Err(vec![format!(
            "no gateway reports following {from} ([fleet] source and status_broker): \
             nothing vouches for {digest}"
        )]);
    }
    let mut problems = Vec::new();
    for g in &canaries {
        let id = &g.gateway;
        let Some(status) = &g.status else { continue };
        let Some(source) = &status.fleet_source else {
            continue;
        };
        if g.state != "online" {
            problems.push(format!("{id}: {}", g.state));
            continue;
        }
        if source.digest.as_deref() != Some(digest) {
            problems.push(format!(
                "{id}: at {}, not {digest} yet",
                source.digest.as_deref().unwrap_or("nothing")
            ));
            continue;
        }
        let last = status.last_update.as_ref();
        if source.outcome.as_deref() != Some("applied") {
            let why = last.map(|u| u.message.as_str()).unwrap_or("");
            problems.push(format!("{id}: rejected {digest}: {why}"));
            continue;
        }
        match last {
            Some(u) if u.result != "ok" => {
                problems.push(format!("{id}: last update {}: {}", u.result, u.message))
            }
            Some(u) => {
                let since = now.saturating_sub(u.at_unix.unwrap_or(now));
                if since < healthy_for.as_secs() {
                    problems.push(format!(
                        "{id}: on it for {since}s, less than --healthy-for {}",
                        humantime::format_duration(healthy_for)
                    ));
                }
            }
            None => problems.push(format!("{id}: reports no update")),
        }
        if let Some(a) = &status.last_minute
            && (a.traps > 0 || a.http_server_errors > 0)
        {
            problems.push(format!(
                "{id}: {} traps and {} server errors in its last minute",
                a.traps, a.http_server_errors
            ));
        }
    }
    if problems.is_empty() {
        Ok(canaries.len())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatewayd::admin::api::{Activity, FleetSource, LastUpdate, Status};

    const FROM: &str = "oci://r/hello:canary";

    fn canary(id: &str, digest: &str, outcome: &str, at_unix: u64, traps: u64) -> FleetMessage {
        FleetMessage {
            gateway: id.into(),
            state: "online".into(),
            at_unix,
            status: Some(Status {
                last_update: Some(LastUpdate {
                    result: if outcome == "applied" {
                        "ok"
                    } else {
                        "rejected"
                    }
                    .into(),
                    message: "why".into(),
                    version: None,
                    at_unix: Some(at_unix),
                }),
                last_minute: Some(Activity {
                    traps,
                    ..Activity::default()
                }),
                fleet_source: Some(FleetSource {
                    source: FROM.into(),
                    digest: Some(digest.into()),
                    outcome: Some(outcome.into()),
                    error: None,
                }),
                ..Status::default()
            }),
        }
    }

    #[test]
    fn canaries_vouch_or_say_why_not() {
        let hour = Duration::from_secs(3600);
        let good = [
            canary("c1", "sha256:a", "applied", 1000, 0),
            canary("c2", "sha256:a", "applied", 1000, 0),
        ];
        assert_eq!(verdict(&good, FROM, "sha256:a", hour, 5000), Ok(2));
        let young = verdict(&good, FROM, "sha256:a", hour, 2000).unwrap_err();
        assert!(young[0].contains("c1: on it for 1000s"), "{young:?}");
        let mixed = [
            canary("c1", "sha256:a", "rejected", 1000, 0),
            canary("c2", "sha256:old", "applied", 1000, 0),
            canary("c3", "sha256:a", "applied", 1000, 2),
        ];
        let problems = verdict(&mixed, FROM, "sha256:a", hour, 9000).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("c1: rejected sha256:a: why"),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("c2: at sha256:old"), "{problems:?}");
        assert!(problems[2].starts_with("c3: 2 traps"), "{problems:?}");
        let nobody = verdict(&good, "oci://r/hello:other", "sha256:a", hour, 9000).unwrap_err();
        assert!(nobody[0].contains("nothing vouches"), "{nobody:?}");
    }
}
