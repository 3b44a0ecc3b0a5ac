//! `gatewayctl push bundle`: sends a bundle file to gatewayd
//! (`POST /v1/bundles`, streamed, with a progress line on a terminal), waits
//! until gatewayd has applied or rejected it, and prints the outcome.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use hyper::Method;

use crate::admin_client::{self, Client, Connection, Upload};
use crate::outcome;

/// gatewayd answers once the update is applied or rejected: compiling on a
/// small board takes a while.
const APPLY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

pub fn run(file: &Path, connection: &Connection, replace_app: bool, json: bool) -> Result<()> {
    let path = if replace_app {
        "/v1/bundles?replace_app=true"
    } else {
        "/v1/bundles"
    };
    let client = Client::new(connection)?;
    let mut upload = Upload::open(file)?;
    let terminal = std::io::stderr().is_terminal();
    if terminal {
        upload = upload.on_progress(progress_line());
    }
    let reply = admin_client::block_on(async {
        let reply = client
            .upload(Method::POST, path, upload, APPLY_TIMEOUT)
            .await;
        if terminal {
            eprint!("\r\x1b[K");
        }
        reply
    })?;
    outcome::report(&reply, "POST /v1/bundles", "applied", json)
}

/// `uploading 45% (1.2 MiB of 2.6 MiB)` on one line of stderr, redrawn when
/// the percentage changes, then a note that gatewayd is at work.
fn progress_line() -> admin_client::Progress {
    let mut shown = None;
    Box::new(move |sent, total| {
        let percent = (sent * 100).checked_div(total).unwrap_or(100);
        if shown == Some(percent) {
            return;
        }
        shown = Some(percent);
        let mut err = std::io::stderr().lock();
        let _ = if sent == total {
            write!(
                err,
                "\ruploaded {}; waiting for gatewayd to apply it\x1b[K",
                size(total)
            )
        } else {
            write!(
                err,
                "\ruploading {percent}% ({} of {})\x1b[K",
                size(sent),
                size(total)
            )
        };
        let _ = err.flush();
    })
}

/// 512 B, 3.4 KiB, 1.2 MiB, 1.0 GiB.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(1_258_291), "1.2 MiB");
        assert_eq!(size(2_726_298), "2.6 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }
}
