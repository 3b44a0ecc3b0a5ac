//! Resolving a component's `files` and `exclude_files` into the concrete list of host
//! files and the guest paths they are mounted at. `exclude_files` globs are matched
//! against host paths relative to the app folder, for glob and folder entries alike.
//!
//! Everything is confined to the app folder: a component must not be able to read
//! `/etc/shadow` because a manifest (perhaps from a pushed bundle) said so. Globs or
//! sources that match nothing are errors, because a typo should not ship an app that
//! silently lacks its assets.

use std::collections::BTreeMap;
use std::path::{Component as PathPart, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use super::FileMount;
use super::manifest::FilesEntry;

/// Resolves `files` against `base_dir`, which must be absolute and canonical.
/// Errors name the entry (`files[1] "static/*": matches no files`); the caller adds the
/// file and the component.
pub fn resolve(
    base_dir: &Path,
    files: &[FilesEntry],
    exclude: &[String],
) -> Result<Vec<FileMount>> {
    let excluded = exclude_set(exclude)?;
    let mut mounts = Mounts::default();
    for (i, entry) in files.iter().enumerate() {
        match entry {
            FilesEntry::Glob(pattern) => {
                let place = format!("files[{i}] {pattern:?}");
                resolve_glob(base_dir, pattern, &excluded, &mut mounts)
                    .map_err(|e| anyhow!("{place}: {e}"))?;
            }
            FilesEntry::Mapping {
                source,
                destination,
            } => {
                let place =
                    format!("files[{i}] {{ source = {source:?}, destination = {destination:?} }}");
                resolve_mapping(base_dir, source, destination, &excluded, &mut mounts)
                    .map_err(|e| anyhow!("{place}: {e}"))?;
            }
        }
    }
    Ok(mounts
        .0
        .into_iter()
        .map(|(destination, source)| FileMount {
            source,
            destination,
        })
        .collect())
}

/// Destination -> host file; a `BTreeMap` gives the sorted, deduplicated output.
#[derive(Default)]
struct Mounts(BTreeMap<String, PathBuf>);

impl Mounts {
    fn add(&mut self, destination: String, source: PathBuf) -> Result<()> {
        match self.0.get(&destination) {
            Some(existing) if *existing != source => bail!(
                "guest path {destination:?} is already mounted from {}; it cannot also come from {}",
                existing.display(),
                source.display()
            ),
            Some(_) => Ok(()),
            None => {
                self.0.insert(destination, source);
                Ok(())
            }
        }
    }
}

fn exclude_set(exclude: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for (i, pattern) in exclude.iter().enumerate() {
        let place = format!("exclude_files[{i}] {pattern:?}");
        check_relative(pattern).map_err(|e| anyhow!("{place}: {e}"))?;
        set.add(glob(pattern).map_err(|e| anyhow!("{place}: {e}"))?);
    }
    set.build().context("exclude_files")
}

fn glob(pattern: &str) -> Result<Glob> {
    // `*` must not cross `/`, as in shell globs; `**` is the way to recurse.
    GlobBuilder::new(strip_dot(pattern))
        .literal_separator(true)
        .build()
        .map_err(|e| anyhow!("invalid glob: {}", e.kind()))
}

fn resolve_glob(base: &Path, pattern: &str, excluded: &GlobSet, mounts: &mut Mounts) -> Result<()> {
    check_relative(pattern)?;
    let matcher: GlobMatcher = glob(pattern)?.compile_matcher();
    let pattern = strip_dot(pattern);
    // Walk only below the literal part of the pattern, so `static/**` does not scan a
    // multi-gigabyte `target/` next to it.
    let root = base.join(literal_prefix(pattern));
    let mut matched = 0usize;
    for file in regular_files(base, &root)? {
        let rel = file.rel.as_path();
        if !matcher.is_match(rel) {
            continue;
        }
        matched += 1;
        if !excluded.is_match(rel) {
            mounts.add(format!("/{}", slash_path(rel)?), file.host)?;
        }
    }
    if matched == 0 {
        if base.join(pattern).is_dir() {
            let dir = pattern.trim_end_matches('/');
            bail!(
                "matches no files: it names a folder; use \"{dir}/**/*\" or \
                 {{ source = \"{dir}\", destination = \"/{dir}\" }}"
            );
        }
        bail!("matches no files");
    }
    Ok(())
}

/// Paths found by walking have no `./` in front, so patterns must not either.
fn strip_dot(mut pattern: &str) -> &str {
    while let Some(rest) = pattern.strip_prefix("./") {
        pattern = rest.trim_start_matches('/');
    }
    pattern
}

fn resolve_mapping(
    base: &Path,
    source: &str,
    destination: &str,
    excluded: &GlobSet,
    mounts: &mut Mounts,
) -> Result<()> {
    check_relative(source)?;
    let destination = normalize_destination(destination)?;
    let host = base.join(source);
    let meta = std::fs::metadata(&host).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("source {source:?}: no such file or directory"),
        _ => anyhow!("source {source:?}: {e}"),
    })?;
    inside(base, &host).map_err(|e| anyhow!("source {source:?}: {e}"))?;
    if meta.is_file() {
        if destination == "/" {
            bail!("destination for a single file must be a file path, not \"/\"");
        }
        let rel = host.strip_prefix(base).unwrap_or(&host);
        if !excluded.is_match(rel) {
            mounts.add(destination, host)?;
        }
        return Ok(());
    }
    let files = regular_files(base, &host)?;
    if files.is_empty() {
        bail!("source {source:?} contains no files");
    }
    for file in files {
        if excluded.is_match(&file.rel) {
            continue;
        }
        let below = file.host.strip_prefix(&host).unwrap_or(&file.host);
        let below = slash_path(below)?;
        let dest = if destination == "/" {
            format!("/{below}")
        } else {
            format!("{destination}/{below}")
        };
        mounts.add(dest, file.host)?;
    }
    Ok(())
}

struct Found {
    /// Path of the file as found under the app folder (a symlink is not replaced by its
    /// target, so globs and exclusions see the names the user sees).
    host: PathBuf,
    /// `host` relative to the app folder.
    rel: PathBuf,
}

/// Regular files at or below `root` (which may not exist: then there are none).
/// Symlinks to files are followed if they stay inside the app folder; symlinked
/// directories are not descended into, which rules out loops.
fn regular_files(base: &Path, root: &Path) -> Result<Vec<Found>> {
    if std::fs::symlink_metadata(root).is_err() {
        return Ok(Vec::new());
    }
    // walkdir follows a symlinked root, so confine the root itself first.
    inside(base, root)?;
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| anyhow!("cannot list files: {e}"))?;
        let path = entry.path();
        let ft = entry.file_type();
        let is_file = if ft.is_symlink() {
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {
                    inside(base, path)?;
                    true
                }
                _ => false,
            }
        } else {
            ft.is_file()
        };
        if is_file {
            let rel = path.strip_prefix(base).unwrap_or(path).to_path_buf();
            out.push(Found {
                host: path.to_path_buf(),
                rel,
            });
        }
    }
    Ok(out)
}

/// Errors unless `path`, with symlinks resolved, lies in `base`.
fn inside(base: &Path, path: &Path) -> Result<()> {
    let real = path
        .canonicalize()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if !real.starts_with(base) {
        bail!(
            "{} leads outside the app folder (to {})",
            path.display(),
            real.display()
        );
    }
    Ok(())
}

/// Host-side paths in `files` are relative to the app folder and may not climb out of it.
fn check_relative(p: &str) -> Result<()> {
    if p.is_empty() {
        bail!("is empty");
    }
    let path = Path::new(p);
    if path.is_absolute() {
        bail!("must be relative to the app folder, not absolute");
    }
    if path.components().any(|c| matches!(c, PathPart::ParentDir)) {
        bail!("must not contain \"..\" (files must stay inside the app folder)");
    }
    Ok(())
}

/// `/web/` -> `/web`; rejects relative paths and `..`.
fn normalize_destination(d: &str) -> Result<String> {
    if !d.starts_with('/') {
        bail!("destination {d:?} must be an absolute guest path (start with \"/\")");
    }
    let mut out = String::new();
    for part in d.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            bail!("destination {d:?} must not contain \"..\"");
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The leading components of a glob that contain no glob syntax. For a fully literal
/// pattern this is the file itself, and walking from it visits just that file.
fn literal_prefix(pattern: &str) -> PathBuf {
    pattern
        .split('/')
        .take_while(|part| !part.contains(['*', '?', '[', ']', '{', '}', '\\']))
        .collect()
}

/// Guest paths use `/` and must be UTF-8.
fn slash_path(rel: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            PathPart::Normal(s) => parts.push(
                s.to_str()
                    .ok_or_else(|| anyhow!("{} is not valid UTF-8", rel.display()))?,
            ),
            PathPart::CurDir => {}
            _ => bail!("unexpected path {}", rel.display()),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, f.as_bytes()).unwrap();
        }
        dir
    }

    fn base(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().canonicalize().unwrap()
    }

    fn glob_entry(s: &str) -> FilesEntry {
        FilesEntry::Glob(s.to_string())
    }

    fn map(source: &str, destination: &str) -> FilesEntry {
        FilesEntry::Mapping {
            source: source.to_string(),
            destination: destination.to_string(),
        }
    }

    fn dests(mounts: &[FileMount]) -> Vec<&str> {
        mounts.iter().map(|m| m.destination.as_str()).collect()
    }

    const TREE: &[&str] = &[
        "a.txt",
        "b.md",
        "static/index.html",
        "static/css/site.css",
        "static/.hidden",
        "assets/x/y.png",
    ];

    #[test]
    fn globs() {
        let dir = tree(TREE);
        let b = base(&dir);
        let m = resolve(&b, &[glob_entry("static/**/*"), glob_entry("a.txt")], &[]).unwrap();
        assert_eq!(
            dests(&m),
            [
                "/a.txt",
                "/static/.hidden",
                "/static/css/site.css",
                "/static/index.html"
            ]
        );
        assert_eq!(m[0].source, b.join("a.txt"));
        assert!(
            m.iter()
                .all(|f| f.source.is_absolute() && f.source.is_file())
        );

        // `*` stays within one folder.
        let m = resolve(&b, &[glob_entry("static/*")], &[]).unwrap();
        assert_eq!(dests(&m), ["/static/.hidden", "/static/index.html"]);
        let m = resolve(&b, &[glob_entry("*.{txt,md}")], &[]).unwrap();
        assert_eq!(dests(&m), ["/a.txt", "/b.md"]);
        let m = resolve(
            &b,
            &[glob_entry("./static/*.html")],
            &["./a.txt".to_string()],
        )
        .unwrap();
        assert_eq!(dests(&m), ["/static/index.html"]);
        let m = resolve(&b, &[glob_entry("./a.txt")], &["./a.txt".to_string()]).unwrap();
        assert!(m.is_empty());
    }

    #[test]
    fn mappings() {
        let dir = tree(TREE);
        let b = base(&dir);
        let m = resolve(
            &b,
            &[map("assets", "/web/"), map("a.txt", "/etc/a.conf")],
            &[],
        )
        .unwrap();
        assert_eq!(dests(&m), ["/etc/a.conf", "/web/x/y.png"]);
        assert_eq!(m[0].source, b.join("a.txt"));
        let m = resolve(&b, &[map("static", "/")], &[]).unwrap();
        assert_eq!(dests(&m), ["/.hidden", "/css/site.css", "/index.html"]);
        let m = resolve(&b, &[map("./static/css", "/c")], &[]).unwrap();
        assert_eq!(dests(&m), ["/c/site.css"]);
    }

    #[test]
    fn excludes_and_dedup() {
        let dir = tree(TREE);
        let b = base(&dir);
        let excl = vec!["static/css/**".to_string(), "**/.hidden".to_string()];
        let m = resolve(
            &b,
            &[glob_entry("static/**/*"), glob_entry("static/index.html")],
            &excl,
        )
        .unwrap();
        assert_eq!(dests(&m), ["/static/index.html"]);
        let m = resolve(&b, &[map("static", "/s")], &excl).unwrap();
        assert_eq!(dests(&m), ["/s/index.html"]);
        // Excluding everything a glob matched is fine; matching nothing is not.
        let m = resolve(&b, &[glob_entry("b.md")], &["*.md".to_string()]).unwrap();
        assert!(m.is_empty());
    }

    #[test]
    fn errors() {
        let dir = tree(TREE);
        let b = base(&dir);
        let err = |files: &[FilesEntry], excl: &[&str]| {
            let excl: Vec<String> = excl.iter().map(|s| s.to_string()).collect();
            resolve(&b, files, &excl).unwrap_err().to_string()
        };
        assert_eq!(
            err(&[glob_entry("a.txt"), glob_entry("statc/**/*")], &[]),
            "files[1] \"statc/**/*\": matches no files"
        );
        assert!(err(&[glob_entry("../x")], &[]).contains("must not contain \"..\""));
        assert!(err(&[glob_entry("/etc/*")], &[]).contains("not absolute"));
        assert!(err(&[glob_entry("a[")], &[]).contains("invalid glob"));
        assert!(err(&[glob_entry("")], &[]).contains("is empty"));
        assert!(err(&[glob_entry("static")], &[]).contains("names a folder; use \"static/**/*\""));
        assert!(
            err(&[map("nope", "/x")], &[]).contains("source \"nope\": no such file or directory")
        );
        assert!(err(&[map("/etc", "/x")], &[]).contains("not absolute"));
        assert!(err(&[map("static/../..", "/x")], &[]).contains(".."));
        assert!(err(&[map("static", "web")], &[]).contains("must be an absolute guest path"));
        assert!(err(&[map("static", "/a/../b")], &[]).contains("must not contain"));
        assert!(err(&[map("a.txt", "/")], &[]).contains("single file"));
        assert!(err(&[glob_entry("a.txt")], &["../x"]).starts_with("exclude_files[0] \"../x\""));
        let e = err(&[map("a.txt", "/same"), map("b.md", "/same")], &[]);
        assert!(e.contains("already mounted"), "{e}");
        fs::create_dir(b.join("empty")).unwrap();
        assert!(err(&[map("empty", "/e")], &[]).contains("contains no files"));
    }

    #[test]
    fn symlinks_stay_inside() {
        let outside = tree(&["secret.txt"]);
        let dir = tree(TREE);
        let b = base(&dir);
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), b.join("static/leak.txt"))
            .unwrap();
        let e = resolve(&b, &[glob_entry("static/**/*")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the app folder"), "{e}");
        std::os::unix::fs::symlink(outside.path(), b.join("out")).unwrap();
        let e = resolve(&b, &[map("out", "/o")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the app folder"), "{e}");
        let e = resolve(&b, &[glob_entry("out/*")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the app folder"), "{e}");

        // A symlink to a file inside the folder is fine.
        fs::remove_file(b.join("static/leak.txt")).unwrap();
        std::os::unix::fs::symlink(b.join("a.txt"), b.join("static/alias.txt")).unwrap();
        let m = resolve(&b, &[glob_entry("static/alias.txt")], &[]).unwrap();
        assert_eq!(dests(&m), ["/static/alias.txt"]);
    }
}
