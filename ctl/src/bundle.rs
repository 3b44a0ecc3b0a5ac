//! `gatewayctl bundle`: a Spin app's spin.toml, plus exactly the components
//! and files it references, packed with a signed manifest (see
//! `gatewayd::update::bundle` for the format). Files keep their places
//! relative to one another under the folder that holds them all, so the
//! bundled spin.toml is the user's file, byte for byte.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Cursor, Read as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use gatewayd::update::bundle::{
    self, APP_DIR, BundleManifest, FORMAT, FileEntry, Limits, MANIFEST, PrecompiledEntry, SIGNATURE,
};
use gatewayd::update::keys::{TrustedKeys, key_id};
use gatewayd::update::reader::{self, hex};
use sha2::{Digest as _, Sha256};

/// Where precompiled code goes in a bundle: beside the app's files, in a
/// folder no Spin app uses.
const PRECOMPILED_DIR: &str = ".gatewayd-precompiled";

/// Boards to precompile the components for.
pub struct Precompile {
    pub targets: Vec<String>,
    /// The boards' gatewayd.toml, for its `[engine]` section.
    pub board_config: Option<PathBuf>,
}

/// A bundled file's bytes: on disk, or made here (precompiled code).
enum Content {
    File(PathBuf),
    Bytes(Vec<u8>),
}

pub fn run(
    path: &Path,
    key: &Path,
    version: Option<&str>,
    health_route: Option<String>,
    precompile: &Precompile,
    output: &Path,
) -> Result<()> {
    let app = gatewayd::app::load(path)?;
    let version = match version.or(app.version.as_deref()) {
        Some(v) => v.to_string(),
        None => bail!(
            "{}: no version: pass --version or set [application] version",
            app.manifest_path.display()
        ),
    };
    semver::Version::parse(&version).map_err(|e| {
        anyhow!("version {version:?} is not a semantic version such as 1.2.3 ({e})")
    })?;

    let mut sources = BTreeSet::new();
    sources.insert(app.manifest_path.clone());
    for component in app.components.values() {
        sources.insert(canonical(&component.source)?);
        for file in &component.files {
            sources.insert(canonical(&file.source)?);
        }
    }
    let root = common_folder(&sources);
    let mut files = Vec::new();
    for source in &sources {
        files.push((relative(&root, source)?, Content::File(source.clone())));
    }
    let mut precompiled = Vec::new();
    // Components sharing one .wasm are compiled once per target.
    let wasm_files: BTreeSet<PathBuf> = app
        .components
        .values()
        .map(|c| canonical(&c.source))
        .collect::<Result<_>>()?;
    for triple in &precompile.targets {
        let engines = crate::compile::engines_for(triple, precompile.board_config.as_deref())?;
        for wasm in &wasm_files {
            let source = relative(&root, wasm)?;
            let code = crate::compile::precompile(&engines, wasm)?;
            let stem = wasm
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("component");
            let mut path = format!("{PRECOMPILED_DIR}/{triple}/{stem}.cwasm");
            let mut n = 1;
            while files.iter().any(|(p, _)| *p == path) {
                n += 1;
                path = format!("{PRECOMPILED_DIR}/{triple}/{stem}-{n}.cwasm");
            }
            eprintln!(
                "{source}: precompiled for {triple}: {}, in {:.2?}{}",
                code.runs_on,
                code.took,
                code.fell_back
                    .as_deref()
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default()
            );
            precompiled.push(PrecompiledEntry {
                source,
                code: path.clone(),
                target: triple.clone(),
                cpu_features: code.cpu_features,
                runs_on: code.runs_on,
            });
            files.push((path, Content::Bytes(code.code)));
        }
    }
    let entries = files
        .iter()
        .map(|(path, content)| describe(path, content))
        .collect::<Result<Vec<_>>>()?;
    let manifest = BundleManifest {
        format: FORMAT,
        app: app.name.clone(),
        version: version.clone(),
        manifest: relative(&root, &app.manifest_path)?,
        health_route,
        files: entries,
        precompiled,
    };
    let text = manifest.to_toml();
    BundleManifest::parse(&text, &Limits::default()).map_err(|e| anyhow!("{e}"))?;

    let secret = crate::keys::load_secret(key)?;
    let comment = format!("gatewayd bundle: app {} version {version}", app.name);
    let signature = minisign::sign(
        None,
        &secret,
        Cursor::new(text.as_bytes()),
        Some(&comment),
        None,
    )
    .map_err(|e| anyhow!("signing with {}: {e}", key.display()))?;

    // A name no user owns: `with_extension` on the output would take
    // `hello.pub` next to `hello.bundle`, and delete it afterwards.
    let partial = partial_name(output);
    write(&partial, &text, &signature.into_string(), &files)
        .with_context(|| format!("writing {}", partial.display()))?;
    // Check what was written with the key it was signed with: a file that
    // changed while it was packed would otherwise ship a bundle no gateway takes.
    let public = minisign::PublicKey::from_secret_key(&secret).map_err(|e| anyhow!("{e}"))?;
    let checked = reader::verify(
        &partial,
        &TrustedKeys::from_key(public.clone()),
        &Limits::default(),
    );
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context("the bundle just written does not verify (did a file change?)"));
    }
    std::fs::rename(&partial, output)
        .with_context(|| format!("moving the bundle to {}", output.display()))?;
    let bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    println!(
        "{}: app \"{}\" version {version}, {} files ({bytes} bytes), signed by key {}",
        output.display(),
        app.name,
        manifest.files.len(),
        key_id(public.keynum())
    );
    Ok(())
}

/// A temporary name beside `output` (same file system, so the final rename
/// is atomic) that no user file can have: hidden, and unique to this process
/// and moment.
fn partial_name(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    output.with_file_name(format!(
        ".{name}.gatewayctl-{}-{nanos:09}.partial",
        std::process::id()
    ))
}

fn canonical(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("{}: cannot resolve", path.display()))
}

/// The deepest folder that holds every file.
fn common_folder(files: &BTreeSet<PathBuf>) -> PathBuf {
    let mut iter = files.iter();
    let first = iter
        .next()
        .and_then(|p| p.parent())
        .unwrap_or(Path::new("/"));
    let mut root = first.to_path_buf();
    for file in iter {
        while !file.starts_with(&root) {
            if !root.pop() {
                break;
            }
        }
    }
    root
}

fn relative(root: &Path, file: &Path) -> Result<String> {
    let rest = file
        .strip_prefix(root)
        .map_err(|_| anyhow!("{} is outside {}", file.display(), root.display()))?;
    let parts: Vec<&str> = rest
        .components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .ok_or_else(|| anyhow!("{}: not UTF-8", file.display()))
        })
        .collect::<Result<_>>()?;
    let path = parts.join("/");
    bundle::check_path(&path).map_err(|e| anyhow!("{}: cannot be bundled: {e}", file.display()))?;
    Ok(path)
}

fn describe(path: &str, content: &Content) -> Result<FileEntry> {
    let source = match content {
        Content::File(source) => source,
        Content::Bytes(bytes) => {
            return Ok(FileEntry {
                path: path.to_string(),
                size: bytes.len() as u64,
                sha256: hex(&Sha256::digest(bytes)),
            });
        }
    };
    let mut file = File::open(source).with_context(|| format!("reading {}", source.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok(FileEntry {
        path: path.to_string(),
        size,
        sha256: hex(&hasher.finalize()),
    })
}

/// The archive: manifest, signature, then the files in manifest order, with
/// fixed owners, modes and times so that equal inputs give equal bundles.
fn write(
    output: &Path,
    manifest: &str,
    signature: &str,
    files: &[(String, Content)],
) -> Result<()> {
    let file = File::create(output)?;
    let gzip = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut archive = tar::Builder::new(gzip);
    append(&mut archive, MANIFEST, manifest.as_bytes())?;
    append(&mut archive, SIGNATURE, signature.as_bytes())?;
    for (path, content) in files {
        let bytes = match content {
            Content::File(source) => std::borrow::Cow::Owned(
                std::fs::read(source).with_context(|| format!("reading {}", source.display()))?,
            ),
            Content::Bytes(bytes) => std::borrow::Cow::Borrowed(bytes),
        };
        append(&mut archive, &format!("{APP_DIR}{path}"), &bytes)?;
    }
    let file = archive.into_inner()?.finish()?;
    file.sync_all()?;
    Ok(())
}

fn append(archive: &mut tar::Builder<impl std::io::Write>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    archive.append_data(&mut header, name, bytes)?;
    Ok(())
}
