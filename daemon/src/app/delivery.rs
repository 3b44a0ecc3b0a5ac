//! How a pub/sub trigger delivers messages to its component (keys of ours, not Spin's):
//! `concurrency` (messages handled at once) and `max_attempts` (tries per message
//! before it is given up on).

use super::diag::Ctx;

/// Messages one trigger handles at once unless `concurrency` says otherwise. Small:
/// a board has few cores, and each message holds an instance.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Tries per message unless `max_attempts` says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
const MAX_CONCURRENCY: i64 = 1024;
const MAX_ATTEMPTS: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub concurrency: usize,
    pub max_attempts: u32,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

pub fn resolve(
    ctx: &Ctx,
    place: &str,
    concurrency: Option<i64>,
    max_attempts: Option<i64>,
) -> anyhow::Result<Delivery> {
    let concurrency = match concurrency {
        None => DEFAULT_CONCURRENCY,
        Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => n as usize,
        Some(n) => {
            return Err(ctx.err(
                place,
                format_args!("concurrency = {n}: must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
    };
    let max_attempts = match max_attempts {
        None => DEFAULT_MAX_ATTEMPTS,
        Some(n) if (1..=MAX_ATTEMPTS).contains(&n) => n as u32,
        Some(n) => {
            return Err(ctx.err(
                place,
                format_args!("max_attempts = {n}: must be between 1 and {MAX_ATTEMPTS}"),
            ));
        }
    };
    Ok(Delivery {
        concurrency,
        max_attempts,
    })
}
