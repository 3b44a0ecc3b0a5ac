//! `gatewayctl keygen`: an ed25519 key pair in minisign's file formats, so
//! `minisign -S/-V` can use the same keys.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use minisign::KeyPair;

use crate::keys::password_or_terminal;

pub fn run(name: &Path, password: bool, force: bool) -> Result<()> {
    let secret_path = with_suffix(name, "key");
    let public_path = with_suffix(name, "pub");
    for path in [&secret_path, &public_path] {
        if path.exists() && !force {
            bail!("{} exists; pass --force to replace it", path.display());
        }
    }
    let pair = if password {
        // With no GATEWAYCTL_PASSWORD, minisign asks on the terminal.
        KeyPair::generate_encrypted_keypair(password_or_terminal("--password")?)
    } else {
        KeyPair::generate_unencrypted_keypair()
    }
    .map_err(|e| anyhow::anyhow!("making the key pair: {e}"))?;
    let id = gatewayd::update::keys::key_id(pair.pk.keynum());
    let secret = pair
        .sk
        .to_box(Some(&format!("gatewayctl secret key {id}")))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let public = pair.pk.to_box().map_err(|e| anyhow::anyhow!("{e}"))?;
    write(&secret_path, &secret.to_bytes(), 0o600)?;
    write(&public_path, &public.to_bytes(), 0o644)?;
    println!(
        "key {id}: secret {} (keep it safe), public {} (give it to your gateways)",
        secret_path.display(),
        public_path.display()
    );
    Ok(())
}

fn with_suffix(name: &Path, suffix: &str) -> PathBuf {
    let mut path = name.as_os_str().to_owned();
    path.push(".");
    path.push(suffix);
    PathBuf::from(path)
}

/// Writes a new file with exactly `mode` and renames it over `path`: a
/// replaced key (`--force`) must not keep the old file's permissions, and
/// a crash must not leave half a key.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fresh = path.with_file_name(format!(".{name}.gatewayctl-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&fresh);
    let written = (|| -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&fresh)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&fresh, path)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&fresh);
    }
    written.with_context(|| format!("writing {}", path.display()))
}
