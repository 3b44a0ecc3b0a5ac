//! Signed bundles end to end: `gatewayctl keygen`, `bundle` and `verify` as
//! processes, real minisign signatures (checked with the `minisign` tool too),
//! and every kind of damaged or forged bundle rejected with its reason.

use crate::harness;

use std::path::Path;
use std::process::{Command, Output};

use gatewayd::update::bundle::{BundleManifest, FORMAT, FileEntry};

fn gatewayctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(harness::gatewayctl())
        .args(args)
        .current_dir(dir)
        .env_remove("GATEWAYCTL_PASSWORD")
        .output()
        .expect("running gatewayctl")
}

fn ok(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

fn failed(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !output.status.success(),
        "succeeded:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    text
}

/// A folder with a key pair `release.{key,pub}` and `hello.bundle` (1.0.0).
fn signed_hello() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let hello = harness::examples().join("hello");
    ok(&gatewayctl(dir.path(), &["keygen", "-o", "release"]));
    ok(&gatewayctl(
        dir.path(),
        &[
            "bundle",
            hello.to_str().unwrap(),
            "--key",
            "release.key",
            "--version",
            "1.0.0",
            "-o",
            "hello.bundle",
        ],
    ));
    dir
}

fn verify(dir: &Path, bundle: &str) -> Output {
    gatewayctl(dir, &["verify", bundle, "--pubkey", "release.pub"])
}

/// The entries of a bundle, as (name, type, bytes).
type Entries = Vec<(String, tar::EntryType, Vec<u8>)>;

fn read_entries(path: &Path) -> Entries {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().to_string();
            let kind = e.header().entry_type();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            (name, kind, bytes)
        })
        .collect()
}

/// Writes entries as they are, names included: the tar crate refuses to *make*
/// names with `..`, so they are put in the header by hand (as an attacker would).
fn write_entries(path: &Path, entries: &Entries) {
    let file = std::fs::File::create(path).unwrap();
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    for (name, kind, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        let raw = &mut header.as_old_mut().name;
        assert!(
            name.len() < raw.len(),
            "test entry names stay under 100 bytes"
        );
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        header.set_entry_type(*kind);
        if kind.is_symlink() {
            header.set_size(0);
            header
                .set_link_name(String::from_utf8_lossy(bytes).as_ref())
                .unwrap();
            header.set_cksum();
            archive.append(&header, std::io::empty()).unwrap();
        } else {
            header.set_size(bytes.len() as u64);
            header.set_cksum();
            archive.append(&header, bytes.as_slice()).unwrap();
        }
    }
    archive.into_inner().unwrap().finish().unwrap();
}

/// Signs `manifest` with `key` the way gatewayctl does.
fn sign(dir: &Path, key: &str, manifest: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(dir.join(key)).unwrap();
    let secret = minisign::SecretKey::from_unencrypted_box(
        minisign::SecretKeyBox::from_string(&text).unwrap(),
    )
    .unwrap();
    minisign::sign(None, &secret, std::io::Cursor::new(manifest), None, None)
        .unwrap()
        .into_string()
        .into_bytes()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    gatewayd::update::reader::hex(&sha2::Sha256::digest(bytes))
}

#[test]
fn a_bundle_round_trips_and_the_minisign_tool_agrees() {
    let dir = signed_hello();
    let verified = ok(&verify(dir.path(), "hello.bundle"));
    assert!(
        verified.contains("OK: app \"hello\" version 1.0.0, 2 files"),
        "{verified}"
    );
    let entries = read_entries(&dir.path().join("hello.bundle"));
    let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "bundle.toml",
            "bundle.toml.minisig",
            "app/hello/spin.toml",
            "app/target/wasm32-wasip2/release/hello.wasm"
        ]
    );
    // The signature is minisign's own format: the standard tool checks it.
    std::fs::write(dir.path().join("bundle.toml"), &entries[0].2).unwrap();
    std::fs::write(dir.path().join("bundle.toml.minisig"), &entries[1].2).unwrap();
    let minisign = Command::new("minisign")
        .args(["-Vm", "bundle.toml", "-p", "release.pub"])
        .current_dir(dir.path())
        .output()
        .expect("running minisign (apt-get install minisign)");
    ok(&minisign);

    // What the gateway unpacks is byte for byte what was bundled.
    let keys =
        gatewayd::update::keys::TrustedKeys::load(&[dir.path().join("release.pub")]).unwrap();
    let limits = gatewayd::update::bundle::Limits::default();
    let unpacked = dir.path().join("unpacked");
    let done = gatewayd::update::reader::unpack(
        &dir.path().join("hello.bundle"),
        &keys,
        &limits,
        &unpacked,
    )
    .unwrap();
    assert_eq!(done.manifest.manifest, "hello/spin.toml");
    let examples = harness::examples();
    for (bundled, original) in [
        ("hello/spin.toml", "hello/spin.toml"),
        (
            "target/wasm32-wasip2/release/hello.wasm",
            "target/wasm32-wasip2/release/hello.wasm",
        ),
    ] {
        assert_eq!(
            std::fs::read(unpacked.join(bundled)).unwrap(),
            std::fs::read(examples.join(original)).unwrap(),
            "{bundled}"
        );
    }
    // And the unpacked app loads as it was.
    let app = gatewayd::app::load(&unpacked.join("hello")).unwrap();
    assert_eq!(app.name, "hello");
}

#[test]
fn keys_from_the_minisign_tool_and_password_protected_keys_sign_bundles() {
    let dir = signed_hello();
    let hello = harness::examples().join("hello");
    let hello = hello.to_str().unwrap();
    let made = Command::new("minisign")
        .args(["-G", "-W", "-p", "tool.pub", "-s", "tool.key"])
        .current_dir(dir.path())
        .output()
        .expect("running minisign (apt-get install minisign)");
    ok(&made);
    ok(&gatewayctl(
        dir.path(),
        &[
            "bundle",
            hello,
            "--key",
            "tool.key",
            "--version",
            "1.0.0",
            "-o",
            "t.bundle",
        ],
    ));
    ok(&gatewayctl(
        dir.path(),
        &["verify", "t.bundle", "--pubkey", "tool.pub"],
    ));

    let with_password = |args: &[&str], password: &str| {
        Command::new(harness::gatewayctl())
            .args(args)
            .current_dir(dir.path())
            .env("GATEWAYCTL_PASSWORD", password)
            .output()
            .unwrap()
    };
    ok(&with_password(
        &["keygen", "-o", "locked", "--password"],
        "open sesame",
    ));
    let key = std::fs::read_to_string(dir.path().join("locked.key")).unwrap();
    assert!(key.contains("gatewayctl secret key"), "{key}");
    let wrong = failed(&with_password(
        &[
            "bundle",
            hello,
            "--key",
            "locked.key",
            "--version",
            "1.0.0",
            "-o",
            "l.bundle",
        ],
        "wrong",
    ));
    assert!(
        wrong.contains("locked.key") && wrong.contains("password"),
        "{wrong}"
    );
    ok(&with_password(
        &[
            "bundle",
            hello,
            "--key",
            "locked.key",
            "--version",
            "1.0.0",
            "-o",
            "l.bundle",
        ],
        "open sesame",
    ));
    ok(&gatewayctl(
        dir.path(),
        &["verify", "l.bundle", "--pubkey", "locked.pub"],
    ));
    // keygen never overwrites a key by accident.
    let again = failed(&gatewayctl(dir.path(), &["keygen", "-o", "release"]));
    assert!(again.contains("release.key exists"), "{again}");
    // With --force it does, and the new secret key is the owner's alone even
    // if the old file was readable by others.
    use std::os::unix::fs::PermissionsExt as _;
    let secret = dir.path().join("release.key");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(&gatewayctl(
        dir.path(),
        &["keygen", "-o", "release", "--force"],
    ));
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}

/// `keygen -o hello` then `bundle --key hello.key -o hello.bundle`: the
/// bundler's temporary files take no name a user may own (it once wrote and
/// deleted `hello.pub`), and none is left behind.
#[test]
fn a_bundle_named_like_its_key_leaves_the_key_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let hello = harness::examples().join("hello");
    ok(&gatewayctl(dir.path(), &["keygen", "-o", "hello"]));
    let before = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let (key, public) = (before("hello.key"), before("hello.pub"));
    ok(&gatewayctl(
        dir.path(),
        &[
            "bundle",
            hello.to_str().unwrap(),
            "--key",
            "hello.key",
            "--version",
            "1.0.0",
            "-o",
            "hello.bundle",
        ],
    ));
    assert_eq!(before("hello.key"), key);
    assert_eq!(before("hello.pub"), public);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["hello.bundle", "hello.key", "hello.pub"]);
    ok(&gatewayctl(
        dir.path(),
        &["verify", "hello.bundle", "--pubkey", "hello.pub"],
    ));
}

/// A password-protected key with no terminal to ask on and no
/// GATEWAYCTL_PASSWORD names the variable (minisign alone said "No such
/// device or address").
#[test]
fn a_password_with_no_terminal_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let without_terminal = |args: &[&str], password: Option<&str>| {
        let mut command = Command::new(harness::gatewayctl());
        command
            .args(args)
            .current_dir(dir.path())
            .env_remove("GATEWAYCTL_PASSWORD")
            .stdin(std::process::Stdio::null());
        if let Some(password) = password {
            command.env("GATEWAYCTL_PASSWORD", password);
        }
        // A new session has no controlling terminal: /dev/tty cannot open.
        // SAFETY: setsid(2) only, in the child between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::setsid();
                Ok(())
            });
        }
        command.output().unwrap()
    };
    let keygen = failed(&without_terminal(
        &["keygen", "-o", "k", "--password"],
        None,
    ));
    assert!(keygen.contains("GATEWAYCTL_PASSWORD"), "{keygen}");
    ok(&without_terminal(
        &["keygen", "-o", "k", "--password"],
        Some("open sesame"),
    ));
    let hello = harness::examples().join("hello");
    let bundle = [
        "bundle",
        hello.to_str().unwrap(),
        "--key",
        "k.key",
        "--version",
        "1.0.0",
        "-o",
        "k.bundle",
    ];
    let signing = failed(&without_terminal(&bundle, None));
    assert!(
        signing.contains("k.key") && signing.contains("GATEWAYCTL_PASSWORD"),
        "{signing}"
    );
    ok(&without_terminal(&bundle, Some("open sesame")));
}

/// Every damaged or forged bundle is rejected, with the reason.
#[test]
fn damaged_and_forged_bundles_are_rejected_with_the_reason() {
    let dir = signed_hello();
    let d = dir.path();
    let genuine = read_entries(&d.join("hello.bundle"));
    ok(&gatewayctl(d, &["keygen", "-o", "other"]));
    let manifest: BundleManifest =
        toml::from_str(std::str::from_utf8(&genuine[0].2).unwrap()).unwrap();

    let mut cases: Vec<(&str, Entries, &str)> = Vec::new();
    let mut flipped = genuine.clone();
    let wasm = &mut flipped[3].2;
    let middle = wasm.len() / 2;
    wasm[middle] ^= 1;
    cases.push((
        "flipped byte in a component",
        flipped,
        "does not match its sha256",
    ));

    let mut spin = genuine.clone();
    spin[2].2.extend_from_slice(b"\n# appended\n");
    cases.push((
        "changed spin.toml",
        spin,
        "is not the size the signed manifest gives",
    ));

    let mut tampered = genuine.clone();
    tampered[0].2 = String::from_utf8(tampered[0].2.clone())
        .unwrap()
        .replace("1.0.0", "9.0.0")
        .into_bytes();
    cases.push((
        "edited manifest",
        tampered,
        "does not match the bundle manifest",
    ));

    let mut unsigned = genuine.clone();
    unsigned.remove(1);
    cases.push((
        "unsigned",
        unsigned,
        "must start with bundle.toml and bundle.toml.minisig",
    ));

    let mut wrong_key = genuine.clone();
    wrong_key[1].2 = sign(d, "other.key", std::str::from_utf8(&genuine[0].2).unwrap());
    cases.push((
        "signed by another key",
        wrong_key,
        "which this gateway does not trust",
    ));

    let mut added = genuine.clone();
    added.push((
        "app/extra.wasm".into(),
        tar::EntryType::Regular,
        b"\0asm".to_vec(),
    ));
    cases.push((
        "file added",
        added,
        "\"app/extra.wasm\" is not in the signed manifest",
    ));

    let mut removed = genuine.clone();
    removed.pop();
    cases.push((
        "file removed",
        removed,
        "ends before app/target/wasm32-wasip2/release/hello.wasm",
    ));

    // Forged with the trusted key itself: the manifest's own rules still hold.
    let forge = |edit: &dyn Fn(&mut BundleManifest), files: Entries| -> Entries {
        let mut m = manifest.clone();
        edit(&mut m);
        let text = m.to_toml();
        let mut entries = vec![
            (
                "bundle.toml".to_string(),
                tar::EntryType::Regular,
                text.clone().into_bytes(),
            ),
            (
                "bundle.toml.minisig".to_string(),
                tar::EntryType::Regular,
                sign(d, "release.key", &text),
            ),
        ];
        entries.extend(files);
        entries
    };
    let evil = b"evil".to_vec();
    let traversal = forge(
        &|m| {
            m.files.push(FileEntry {
                path: "../../etc/cron.d/x".into(),
                size: 4,
                sha256: sha256(b"evil"),
            });
        },
        [
            genuine[2..].to_vec(),
            vec![(
                "app/../../etc/cron.d/x".into(),
                tar::EntryType::Regular,
                evil.clone(),
            )],
        ]
        .concat(),
    );
    cases.push((
        "path traversal",
        traversal,
        "must not have empty, `.` or `..` segments",
    ));
    let absolute = forge(
        &|m| {
            m.files.push(FileEntry {
                path: "/etc/passwd".into(),
                size: 4,
                sha256: sha256(b"evil"),
            })
        },
        genuine[2..].to_vec(),
    );
    cases.push(("absolute path", absolute, "must be relative"));
    let mut link_files = genuine[2..].to_vec();
    link_files[1] = (
        link_files[1].0.clone(),
        tar::EntryType::Symlink,
        b"/etc/passwd".to_vec(),
    );
    let symlink = forge(&|_| {}, link_files);
    cases.push(("symlink entry", symlink, "is a Symlink, not a regular file"));
    let huge = forge(&|m| m.files[1].size = 10 << 30, genuine[2..].to_vec());
    cases.push(("oversize", huge, "more than the limit"));
    let old_format = forge(&|m| m.format = FORMAT + 1, genuine[2..].to_vec());
    cases.push(("unknown format", old_format, "format 2 is not supported"));

    for (what, entries, reason) in cases {
        write_entries(&d.join("bad.bundle"), &entries);
        let error = failed(&verify(d, "bad.bundle"));
        assert!(
            error.contains(reason),
            "{what}: expected {reason:?} in:\n{error}"
        );
    }

    // Truncated: the archive cut short.
    let bytes = std::fs::read(d.join("hello.bundle")).unwrap();
    std::fs::write(d.join("cut.bundle"), &bytes[..bytes.len() / 2]).unwrap();
    let error = failed(&verify(d, "cut.bundle"));
    assert!(error.contains("truncated"), "{error}");
    // Not a bundle at all.
    std::fs::write(d.join("junk.bundle"), b"hello").unwrap();
    let error = failed(&verify(d, "junk.bundle"));
    assert!(error.contains("not a gatewayd bundle"), "{error}");
}

#[test]
fn bundling_needs_a_version_and_a_loadable_app() {
    let dir = tempfile::tempdir().unwrap();
    ok(&gatewayctl(dir.path(), &["keygen", "-o", "k"]));
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("c.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(
        app.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n",
    )
    .unwrap();
    let no_version = failed(&gatewayctl(
        dir.path(),
        &["bundle", "app", "--key", "k.key", "-o", "a.bundle"],
    ));
    assert!(
        no_version.contains("no version: pass --version"),
        "{no_version}"
    );
    let bad_version = failed(&gatewayctl(
        dir.path(),
        &[
            "bundle",
            "app",
            "--key",
            "k.key",
            "--version",
            "latest",
            "-o",
            "a.bundle",
        ],
    ));
    assert!(
        bad_version.contains("not a semantic version"),
        "{bad_version}"
    );
    std::fs::write(app.join("spin.toml"), "spin_manifest_version = 2\n[application]\nname = \"a\"\n[component.c]\nsource = \"missing.wasm\"\n").unwrap();
    let broken = failed(&gatewayctl(
        dir.path(),
        &[
            "bundle",
            "app",
            "--key",
            "k.key",
            "--version",
            "1.0.0",
            "-o",
            "a.bundle",
        ],
    ));
    assert!(broken.contains("missing.wasm"), "{broken}");
    assert!(!dir.path().join("a.bundle").exists());
}

/// A bundle whose manifest was signed by the standard `minisign` tool (with
/// a key it made) verifies: the signature is plain minisign over bundle.toml.
#[test]
fn a_bundle_signed_with_the_minisign_tool_verifies() {
    let dir = signed_hello();
    let d = dir.path();
    let made = Command::new("minisign")
        .args(["-G", "-W", "-p", "tool.pub", "-s", "tool.key"])
        .current_dir(d)
        .output()
        .expect("running minisign (apt-get install minisign)");
    ok(&made);
    let mut entries = read_entries(&d.join("hello.bundle"));
    std::fs::write(d.join("bundle.toml"), &entries[0].2).unwrap();
    let signed = Command::new("minisign")
        .args(["-S", "-s", "tool.key", "-m", "bundle.toml"])
        .current_dir(d)
        .output()
        .unwrap();
    ok(&signed);
    entries[1].2 = std::fs::read(d.join("bundle.toml.minisig")).unwrap();
    write_entries(&d.join("tool.bundle"), &entries);
    let verified = ok(&gatewayctl(
        d,
        &["verify", "tool.bundle", "--pubkey", "tool.pub"],
    ));
    assert!(verified.contains("OK"), "{verified}");
    let other = failed(&gatewayctl(
        d,
        &["verify", "tool.bundle", "--pubkey", "release.pub"],
    ));
    assert!(other.contains("does not trust"), "{other}");
}
