//! Bounded retries of a failed message handler, with a short growing pause
//! between tries (a guest that failed on a transient error gets a moment).

use std::future::Future;
use std::time::Duration;

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Runs `attempt` (given the attempt number, from 1) until it succeeds or has
/// failed `max_attempts` times; returns the last error. `what` names the
/// message in logs.
pub async fn with_retries<F, Fut>(
    max_attempts: u32,
    what: &str,
    mut attempt: F,
) -> anyhow::Result<()>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut pause = FIRST_PAUSE;
    let mut n = 1;
    loop {
        match attempt(n).await {
            Ok(()) => return Ok(()),
            Err(e) if n >= max_attempts => return Err(e),
            Err(e) => {
                tracing::warn!("{what}: attempt {n} of {max_attempts} failed: {e:#}; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stops_at_the_first_success_or_the_last_attempt() {
        let mut calls = 0;
        let ok = with_retries(3, "m", |n| {
            calls += 1;
            async move { if n < 2 { anyhow::bail!("no") } else { Ok(()) } }
        })
        .await;
        assert!(ok.is_ok());
        assert_eq!(calls, 2);
        let mut calls = 0;
        let err = with_retries(3, "m", |n| {
            calls += 1;
            async move { anyhow::bail!("no {n}") }
        })
        .await;
        assert_eq!(err.unwrap_err().to_string(), "no 3");
        assert_eq!(calls, 3);
    }
}
