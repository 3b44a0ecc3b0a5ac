//! The bundle format. A bundle is one gzip-compressed tar archive whose
//! entries are, in this order:
//!
//! 1. `bundle.toml`: the bundle manifest ([`BundleManifest`]): format, app
//!    name and version, and the path, size and sha256 of every app file;
//! 2. `bundle.toml.minisig`: a minisign signature of `bundle.toml`'s bytes
//!    (so `minisign -Vm bundle.toml` checks it too);
//! 3. `app/<path>` for every file the manifest lists, in its order: the
//!    `spin.toml` and the components and files it references, and any code
//!    precompiled for boards (`gatewayctl bundle --target`), nothing else.
//!
//! The signature covers the manifest and the manifest covers every byte of
//! every file, so one check of the signature vouches for the whole bundle.

use serde::{Deserialize, Serialize};

/// The format this code reads and writes.
pub const FORMAT: u32 = 1;
/// Name of the manifest entry.
pub const MANIFEST: &str = "bundle.toml";
/// Name of the signature entry.
pub const SIGNATURE: &str = "bundle.toml.minisig";
/// Prefix of every app file's entry.
pub const APP_DIR: &str = "app/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub format: u32,
    /// `[application] name` of the app's spin.toml.
    pub app: String,
    /// The bundle's version; updates must raise it (semver).
    pub version: String,
    /// Which listed file is the app's `spin.toml`. Files keep their places
    /// relative to one another (a component at `../target/x.wasm` of the
    /// manifest's folder is bundled as such), so nothing is rewritten.
    pub manifest: String,
    /// A path the gateway GETs on the new app before switching to it; it
    /// must answer 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_route: Option<String>,
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
    /// Components compiled ahead of time for a board; gateways whose engine
    /// accepts the code skip compiling, others compile as usual.
    #[serde(default, rename = "precompiled", skip_serializing_if = "Vec::is_empty")]
    pub precompiled: Vec<PrecompiledEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecompiledEntry {
    /// The listed wasm file this code was compiled from.
    pub source: String,
    /// The listed file holding the code (`*.cwasm`).
    pub code: String,
    /// The board's target triple, e.g. `aarch64-unknown-linux-gnu`.
    pub target: String,
    /// What the code is, e.g. "native code for aarch64-unknown-linux-gnu"
    /// or "Pulley interpreter (pulley64)": for people and logs.
    pub runs_on: String,
    /// CPU features the code uses beyond the architecture's baseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_features: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the app folder, `/`-separated, e.g. `spin.toml`,
    /// `target/hello.wasm`.
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// Bounds on what a bundle may hold, so that a hostile one cannot fill the
/// disk or memory.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_files: usize,
    /// Largest single file, unpacked.
    pub max_file_size: u64,
    /// All files together, unpacked.
    pub max_total_size: u64,
    /// Largest `bundle.toml`.
    pub max_manifest_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_files: 10_000,
            max_file_size: 256 << 20,
            max_total_size: 512 << 20,
            max_manifest_size: 4 << 20,
        }
    }
}

/// Checks that `path` is a plain relative path that stays inside the app
/// folder: `/`-separated, no empty, `.` or `..` segments, no leading `/`,
/// no backslash or NUL, at most 1024 bytes.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 1024 {
        return Err("must be 1 to 1024 bytes".into());
    }
    if path.contains(['\\', '\0']) {
        return Err("must not contain a backslash or NUL".into());
    }
    if path.starts_with('/') {
        return Err("must be relative".into());
    }
    if path
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err("must not have empty, `.` or `..` segments".into());
    }
    Ok(())
}

impl BundleManifest {
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a bundle manifest always serialises")
    }

    /// Parses and checks a manifest: format, names, paths (valid, unique),
    /// hashes well formed, within `limits`.
    pub fn parse(text: &str, limits: &Limits) -> Result<Self, String> {
        let manifest: BundleManifest =
            toml::from_str(text).map_err(|e| format!("{MANIFEST}: {}", e.message()))?;
        if manifest.format != FORMAT {
            return Err(format!(
                "{MANIFEST}: format {} is not supported (this gateway reads format {FORMAT})",
                manifest.format
            ));
        }
        if manifest.app.is_empty() || manifest.version.is_empty() {
            return Err(format!("{MANIFEST}: `app` and `version` must not be empty"));
        }
        if let Err(e) = semver::Version::parse(&manifest.version) {
            return Err(format!(
                "{MANIFEST}: version {:?} is not a semantic version such as 1.2.3 ({e})",
                manifest.version
            ));
        }
        if manifest.files.len() > limits.max_files {
            return Err(format!(
                "{MANIFEST}: {} files, more than the limit of {}",
                manifest.files.len(),
                limits.max_files
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut total = 0u64;
        for file in &manifest.files {
            check_path(&file.path).map_err(|e| format!("{MANIFEST}: file {:?}: {e}", file.path))?;
            if !seen.insert(file.path.as_str()) {
                return Err(format!("{MANIFEST}: file {:?} is listed twice", file.path));
            }
            if file.size > limits.max_file_size {
                return Err(format!(
                    "{MANIFEST}: file {:?} is {} bytes, more than the limit of {}",
                    file.path, file.size, limits.max_file_size
                ));
            }
            total = total.saturating_add(file.size);
            if file.sha256.len() != 64
                || !file
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(format!(
                    "{MANIFEST}: file {:?}: sha256 must be 64 lower-case hex digits",
                    file.path
                ));
            }
        }
        if total > limits.max_total_size {
            return Err(format!(
                "{MANIFEST}: files total {total} bytes, more than the limit of {}",
                limits.max_total_size
            ));
        }
        if let Some(route) = &manifest.health_route
            && (!route.starts_with('/') || route.parse::<http::Uri>().is_err())
        {
            return Err(format!(
                "{MANIFEST}: health_route {route:?} must be a path such as /health"
            ));
        }
        for entry in &manifest.precompiled {
            for (what, path) in [("source", &entry.source), ("code", &entry.code)] {
                if !seen.contains(path.as_str()) {
                    return Err(format!(
                        "{MANIFEST}: precompiled {what} {path:?} is not among the files"
                    ));
                }
            }
            if !entry.code.ends_with(".cwasm") || entry.code == entry.source {
                return Err(format!(
                    "{MANIFEST}: precompiled code {:?} must be a .cwasm file",
                    entry.code
                ));
            }
        }
        if !seen.contains(manifest.manifest.as_str()) {
            return Err(format!(
                "{MANIFEST}: the app manifest {:?} is not among the files",
                manifest.manifest
            ));
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in [
            "spin.toml",
            "target/wasm32-wasip2/release/a.wasm",
            "static/.hidden",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "a\\b",
            "a\0b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manifests_round_trip_and_are_checked() {
        let manifest = BundleManifest {
            format: FORMAT,
            app: "hello".into(),
            version: "1.0.0".into(),
            manifest: "spin.toml".into(),
            health_route: None,
            files: vec![FileEntry {
                path: "spin.toml".into(),
                size: 3,
                sha256: "a".repeat(64),
            }],
            precompiled: Vec::new(),
        };
        let limits = Limits::default();
        assert_eq!(
            BundleManifest::parse(&manifest.to_toml(), &limits).unwrap(),
            manifest
        );
        let twice = manifest.to_toml()
            + "[[file]]\npath = \"spin.toml\"\nsize = 1\nsha256 = \""
            + &"b".repeat(64)
            + "\"\n";
        assert!(
            BundleManifest::parse(&twice, &limits)
                .unwrap_err()
                .contains("listed twice")
        );
        let evil = manifest
            .to_toml()
            .replace("path = \"spin.toml\"", "path = \"../spin.toml\"");
        assert!(
            BundleManifest::parse(&evil, &limits)
                .unwrap_err()
                .contains("segments")
        );
        let stray = manifest.to_toml()
            + "[[precompiled]]\nsource = \"a.wasm\"\ncode = \"spin.toml\"\ntarget = \"x\"\nruns_on = \"x\"\n";
        assert!(
            BundleManifest::parse(&stray, &limits)
                .unwrap_err()
                .contains("precompiled source \"a.wasm\" is not among the files")
        );
        let big = Limits {
            max_total_size: 2,
            ..Limits::default()
        };
        assert!(
            BundleManifest::parse(&manifest.to_toml(), &big)
                .unwrap_err()
                .contains("limit")
        );
    }
}
