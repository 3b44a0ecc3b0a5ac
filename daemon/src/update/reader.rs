//! Reading a bundle safely. `verify` reads the whole archive without writing
//! anything: the signature must come from a trusted key, and every entry must
//! be exactly the next file the signed manifest lists (a regular file, its
//! size and sha256 as signed); anything else stops the read. `unpack` reads it
//! again, checking the same, and only then writes files, under a fresh folder.
//! Sizes are bounded by the signed manifest and the `Limits`, so neither a
//! huge entry nor a decompression bomb gets far.

use std::fs::File;
use std::io::{BufReader, Read, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use sha2::{Digest as _, Sha256};

use super::bundle::{APP_DIR, BundleManifest, FileEntry, Limits, MANIFEST, SIGNATURE};
use super::keys::TrustedKeys;

/// Largest signature file (minisign's are under 400 bytes).
const MAX_SIGNATURE_SIZE: u64 = 4096;

/// A bundle whose signature and files checked out.
#[derive(Debug)]
pub struct Verified {
    pub manifest: BundleManifest,
    /// Id of the trusted key that signed it.
    pub signer: String,
}

/// Checks `bundle` completely, writing nothing.
pub fn verify(bundle: &Path, keys: &TrustedKeys, limits: &Limits) -> Result<Verified> {
    walk(bundle, keys, limits, |_, _| Ok(()))
}

/// Checks `bundle` again and writes its app files under `dest`, which must
/// not exist yet. Files are fsynced; on error `dest` may hold part of the
/// files and is the caller's to remove.
pub fn unpack(bundle: &Path, keys: &TrustedKeys, limits: &Limits, dest: &Path) -> Result<Verified> {
    std::fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
    walk(bundle, keys, limits, |entry, data| {
        let target: PathBuf = dest.join(&entry.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        file.write_all(data)?;
        file.sync_all()?;
        Ok(())
    })
}

/// Reads the archive in order, handing each checked file to `sink`.
fn walk(
    bundle: &Path,
    keys: &TrustedKeys,
    limits: &Limits,
    mut sink: impl FnMut(&FileEntry, &[u8]) -> Result<()>,
) -> Result<Verified> {
    let file = File::open(bundle).with_context(|| format!("opening {}", bundle.display()))?;
    let gzip = flate2::read::GzDecoder::new(BufReader::new(file));
    let mut archive = tar::Archive::new(gzip);
    let mut entries = archive.entries().map_err(unreadable)?;
    let mut next = |what: &str| -> Result<tar::Entry<'_, _>> {
        match entries.next() {
            Some(entry) => entry.map_err(unreadable),
            None => bail!("the bundle ends before {what} (truncated?)"),
        }
    };

    let manifest_bytes = read_small(next(MANIFEST)?, MANIFEST, limits.max_manifest_size)?;
    let signature = read_small(next(SIGNATURE)?, SIGNATURE, MAX_SIGNATURE_SIZE)?;
    let signature = String::from_utf8(signature).map_err(|_| anyhow!("{SIGNATURE} is not text"))?;
    let signer = keys
        .verify(&manifest_bytes, &signature)
        .map_err(|e| anyhow!("rejected: {e}"))?
        .id
        .clone();
    let text =
        std::str::from_utf8(&manifest_bytes).map_err(|_| anyhow!("{MANIFEST} is not UTF-8"))?;
    let manifest = BundleManifest::parse(text, limits).map_err(|e| anyhow!("rejected: {e}"))?;

    let mut buffer = Vec::new();
    for expected in &manifest.files {
        let entry = next(&format!("{APP_DIR}{}", expected.path))?;
        let name = entry_name(&entry)?;
        if name != format!("{APP_DIR}{}", expected.path) {
            bail!(
                "rejected: entry {name:?} where the signed manifest has {APP_DIR}{} next",
                expected.path
            );
        }
        check_regular(&entry, &name)?;
        if entry.header().size().map_err(unreadable)? != expected.size {
            bail!("rejected: {name} is not the size the signed manifest gives");
        }
        buffer.clear();
        entry
            .take(expected.size + 1)
            .read_to_end(&mut buffer)
            .map_err(unreadable)?;
        if buffer.len() as u64 != expected.size {
            bail!("rejected: {name} is not the size the signed manifest gives (truncated?)");
        }
        let digest = hex(&Sha256::digest(&buffer));
        if digest != expected.sha256 {
            bail!("rejected: {name} does not match its sha256 in the signed manifest");
        }
        sink(expected, &buffer)?;
    }
    if let Some(extra) = entries.next() {
        let name = extra.map_err(unreadable).and_then(|e| entry_name(&e))?;
        bail!("rejected: entry {name:?} is not in the signed manifest");
    }
    Ok(Verified { manifest, signer })
}

fn read_small(entry: tar::Entry<'_, impl Read>, want: &str, max: u64) -> Result<Vec<u8>> {
    let name = entry_name(&entry)?;
    if name != want {
        bail!(
            "rejected: the bundle must start with {MANIFEST} and {SIGNATURE}; found {name:?} where {want} belongs (unsigned?)"
        );
    }
    check_regular(&entry, &name)?;
    let mut bytes = Vec::new();
    entry
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max {
        bail!("rejected: {name} is larger than {max} bytes");
    }
    Ok(bytes)
}

fn entry_name(entry: &tar::Entry<'_, impl Read>) -> Result<String> {
    let path = entry.path_bytes();
    String::from_utf8(path.into_owned())
        .map_err(|_| anyhow!("rejected: an entry name is not UTF-8"))
}

/// Links, devices, folders and the like are never part of a bundle.
fn check_regular(entry: &tar::Entry<'_, impl Read>, name: &str) -> Result<()> {
    let kind = entry.header().entry_type();
    if !kind.is_file() {
        bail!("rejected: entry {name:?} is a {kind:?}, not a regular file");
    }
    Ok(())
}

fn unreadable(e: std::io::Error) -> anyhow::Error {
    anyhow!("cannot read the bundle: {e} (truncated, or not a gatewayd bundle?)")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
