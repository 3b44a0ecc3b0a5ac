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

/// Longest entry name. A GNU long-name record declaring more is refused
/// before a byte of it is read (the tar crate would read any size into
/// memory: a 3 MB bundle could make it allocate gigabytes).
const MAX_NAME_SIZE: u64 = 4096;

/// A bundle whose signature and files checked out.
#[derive(Debug)]
pub struct Verified {
    pub manifest: BundleManifest,
    /// Id of the trusted key that signed it.
    pub signer: String,
}

/// Checks `bundle` completely, writing nothing.
pub fn verify(bundle: &Path, keys: &TrustedKeys, limits: &Limits) -> Result<Verified> {
    walk(open(bundle)?, keys, limits, |_, _| Ok(()))
}

/// [`verify`] of a bundle in memory (the fuzzing entry point).
pub fn verify_bytes(bundle: &[u8], keys: &TrustedKeys, limits: &Limits) -> Result<Verified> {
    walk(bundle, keys, limits, |_, _| Ok(()))
}

fn open(bundle: &Path) -> Result<BufReader<File>> {
    let file = File::open(bundle).with_context(|| format!("opening {}", bundle.display()))?;
    Ok(BufReader::new(file))
}

/// Checks `bundle` again and writes its app files under `dest`, which must
/// not exist yet. Files are fsynced; on error `dest` may hold part of the
/// files and is the caller's to remove.
pub fn unpack(bundle: &Path, keys: &TrustedKeys, limits: &Limits, dest: &Path) -> Result<Verified> {
    let bundle = open(bundle)?;
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
    bundle: impl Read,
    keys: &TrustedKeys,
    limits: &Limits,
    mut sink: impl FnMut(&FileEntry, &[u8]) -> Result<()>,
) -> Result<Verified> {
    let gzip = flate2::read::GzDecoder::new(bundle);
    let mut archive = tar::Archive::new(gzip);
    // Raw: name extensions come to us as records, read within our limits.
    let mut entries = archive.entries().map_err(unreadable)?.raw(true);
    // The next entry and its name (None at the end of the archive).
    let mut next_entry = |what: &str| -> Result<Option<(String, tar::Entry<'_, _>)>> {
        let mut long_name = None;
        loop {
            let entry = match entries.next() {
                Some(entry) => entry.map_err(unreadable)?,
                None if long_name.is_some() => {
                    bail!("the bundle ends inside a record (truncated?)")
                }
                None => return Ok(None),
            };
            let kind = entry.header().entry_type();
            if kind.is_gnu_longname() && long_name.is_none() {
                long_name = Some(read_long_name(entry)?);
                continue;
            }
            if kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions()
            {
                bail!("a {kind:?} record where {what} belongs; bundles have none");
            }
            let name = match long_name {
                Some(name) => name,
                None => entry_name(&entry)?,
            };
            return Ok(Some((name, entry)));
        }
    };
    let mut next = |what: &str| -> Result<(String, tar::Entry<'_, _>)> {
        next_entry(what)?.ok_or_else(|| anyhow!("the bundle ends before {what} (truncated?)"))
    };

    let manifest_bytes = read_small(next(MANIFEST)?, MANIFEST, limits.max_manifest_size)?;
    let signature = read_small(next(SIGNATURE)?, SIGNATURE, MAX_SIGNATURE_SIZE)?;
    let signature = String::from_utf8(signature).map_err(|_| anyhow!("{SIGNATURE} is not text"))?;
    let signer = keys
        .verify(&manifest_bytes, &signature)
        .map_err(|e| anyhow!("{e}"))?
        .id
        .clone();
    let text =
        std::str::from_utf8(&manifest_bytes).map_err(|_| anyhow!("{MANIFEST} is not UTF-8"))?;
    let manifest = BundleManifest::parse(text, limits).map_err(|e| anyhow!("{e}"))?;

    let mut buffer = Vec::new();
    for expected in &manifest.files {
        let (name, entry) = next(&format!("{APP_DIR}{}", expected.path))?;
        if name != format!("{APP_DIR}{}", expected.path) {
            bail!(
                "entry {name:?} where the signed manifest has {APP_DIR}{} next",
                expected.path
            );
        }
        check_regular(&entry, &name)?;
        if entry.header().size().map_err(unreadable)? != expected.size {
            bail!("{name} is not the size the signed manifest gives");
        }
        buffer.clear();
        entry
            .take(expected.size + 1)
            .read_to_end(&mut buffer)
            .map_err(unreadable)?;
        if buffer.len() as u64 != expected.size {
            bail!("{name} is not the size the signed manifest gives (truncated?)");
        }
        let digest = hex(&Sha256::digest(&buffer));
        if digest != expected.sha256 {
            bail!("{name} does not match its sha256 in the signed manifest");
        }
        sink(expected, &buffer)?;
    }
    if let Some((name, _)) = next_entry("the end")? {
        bail!("entry {name:?} is not in the signed manifest");
    }
    Ok(Verified { manifest, signer })
}

fn read_small(
    (name, entry): (String, tar::Entry<'_, impl Read>),
    want: &str,
    max: u64,
) -> Result<Vec<u8>> {
    if name != want {
        bail!(
            "the bundle must start with {MANIFEST} and {SIGNATURE}; found {name:?} where {want} belongs (unsigned?)"
        );
    }
    check_regular(&entry, &name)?;
    let mut bytes = Vec::new();
    entry
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max {
        bail!("{name} is larger than {max} bytes");
    }
    Ok(bytes)
}

/// The name a GNU long-name record carries, refused unread when it declares
/// more than [`MAX_NAME_SIZE`] bytes.
fn read_long_name(entry: tar::Entry<'_, impl Read>) -> Result<String> {
    let size = entry.header().size().map_err(unreadable)?;
    if size > MAX_NAME_SIZE {
        bail!("an entry name of {size} bytes (the limit is {MAX_NAME_SIZE})");
    }
    let mut bytes = Vec::new();
    entry
        .take(MAX_NAME_SIZE)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8(bytes).map_err(|_| anyhow!("an entry name is not UTF-8"))
}

fn entry_name(entry: &tar::Entry<'_, impl Read>) -> Result<String> {
    let path = entry.path_bytes();
    String::from_utf8(path.into_owned()).map_err(|_| anyhow!("an entry name is not UTF-8"))
}

/// Links, devices, folders and the like are never part of a bundle.
fn check_regular(entry: &tar::Entry<'_, impl Read>, name: &str) -> Result<()> {
    let kind = entry.header().entry_type();
    if !kind.is_file() {
        bail!("entry {name:?} is a {kind:?}, not a regular file");
    }
    Ok(())
}

fn unreadable(e: std::io::Error) -> anyhow::Error {
    anyhow!("cannot read the bundle: {e} (truncated, or not a gatewayd bundle?)")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn gzip(tar: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        gz.finish().unwrap()
    }

    fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_path(name).unwrap();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        header.set_cksum();
        header
    }

    /// A signed bundle with one app file at `path` (longer than the 100
    /// bytes a tar header holds: the builder writes a GNU long-name record).
    fn bundle(path: &str, data: &[u8]) -> (Vec<u8>, TrustedKeys) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let manifest = BundleManifest {
            format: super::super::bundle::FORMAT,
            app: "t".into(),
            version: "1.0.0".into(),
            manifest: path.into(),
            health_route: None,
            files: vec![FileEntry {
                path: path.into(),
                size: data.len() as u64,
                sha256: hex(&Sha256::digest(data)),
            }],
            precompiled: Vec::new(),
        };
        let text = manifest.to_toml();
        let signature =
            minisign::sign(None, &pair.sk, Cursor::new(text.as_bytes()), None, None).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in [
            (MANIFEST.to_string(), text.as_bytes().to_vec()),
            (SIGNATURE.to_string(), signature.into_string().into_bytes()),
            (format!("{APP_DIR}{path}"), data.to_vec()),
        ] {
            let mut header = header("x", tar::EntryType::Regular, bytes.len() as u64);
            builder.append_data(&mut header, name, &bytes[..]).unwrap();
        }
        (
            gzip(&builder.into_inner().unwrap()),
            TrustedKeys::from_key(pair.pk),
        )
    }

    fn check(bytes: &[u8], keys: &TrustedKeys) -> Result<Verified> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bundle");
        std::fs::write(&path, bytes).unwrap();
        verify(&path, keys, &Limits::default())
    }

    #[test]
    fn long_names_within_the_limit_verify() {
        let long = format!("{}/spin.toml", "deep".repeat(40));
        let (bytes, keys) = bundle(&long, b"spin_manifest_version = 2\n");
        let verified = check(&bytes, &keys).unwrap();
        assert_eq!(verified.manifest.files[0].path, long);
    }

    /// The attack: a long-name record declaring 64 MiB (in the wild, 3 GiB
    /// of zeros compressed to 3 MB). Refused from its header, unread.
    #[test]
    fn a_huge_long_name_record_is_refused_unread() {
        let size = 64u64 << 20;
        let mut tar = Vec::new();
        tar.extend_from_slice(
            header("././@LongLink", tar::EntryType::GNULongName, size).as_bytes(),
        );
        tar.extend(std::iter::repeat_n(0u8, size as usize));
        let err = format!(
            "{:#}",
            check(
                &gzip(&tar),
                &TrustedKeys::from_key(
                    minisign::KeyPair::generate_unencrypted_keypair()
                        .unwrap()
                        .pk,
                )
            )
            .unwrap_err()
        );
        assert!(
            err.contains(&format!("an entry name of {size} bytes")),
            "{err}"
        );
    }

    #[test]
    fn pax_and_long_link_records_are_refused() {
        for kind in [
            tar::EntryType::XHeader,
            tar::EntryType::XGlobalHeader,
            tar::EntryType::GNULongLink,
        ] {
            let mut tar = Vec::new();
            tar.extend_from_slice(header("x", kind, 0).as_bytes());
            tar.extend(std::iter::repeat_n(0u8, 1024));
            let keys = TrustedKeys::from_key(
                minisign::KeyPair::generate_unencrypted_keypair()
                    .unwrap()
                    .pk,
            );
            let err = format!("{:#}", check(&gzip(&tar), &keys).unwrap_err());
            assert!(err.contains("bundles have none"), "{kind:?}: {err}");
        }
    }
}
