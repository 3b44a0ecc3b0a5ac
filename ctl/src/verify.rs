//! `gatewayctl verify`: the gateway's own bundle check, run offline.

use std::path::{Path, PathBuf};

use anyhow::Result;
use gatewayd::update::bundle::Limits;
use gatewayd::update::keys::TrustedKeys;
use gatewayd::update::reader;

pub fn run(file: &Path, pubkeys: &[PathBuf]) -> Result<()> {
    let keys = TrustedKeys::load(pubkeys)?;
    let verified = reader::verify(file, &keys, &Limits::default())
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?;
    let bytes: u64 = verified.manifest.files.iter().map(|f| f.size).sum();
    println!(
        "{}: OK: app \"{}\" version {}, {} files ({bytes} bytes), signed by key {}",
        file.display(),
        verified.manifest.app,
        verified.manifest.version,
        verified.manifest.files.len(),
        verified.signer
    );
    Ok(())
}
