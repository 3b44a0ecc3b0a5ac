//! The packages `packaging/build.sh` makes, looked at with the tools a user
//! and a distribution use: dpkg-deb and lintian on each .deb, ar and tar on
//! each .ipk; then the amd64 .deb installed on this machine for real, run as
//! its user with the unit's environment, updated with the installed
//! gatewayctl, removed and purged; and the runtime-only gatewayd of the
//! amd64 gatewayd-runtime package, run as a service that refuses bundles
//! without code for it and runs those with.
//!
//! Ignored by `cargo test`: tests/all.sh builds the packages and runs these
//! with `--ignored packages::`, passing their folder in GATEWAYD_PACKAGES.
//! The install test needs root (dpkg), as CI has.

use crate::harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use harness::{Gateway, Program, Service, ctl, examples, free_port, get, ok, rejected};

const ARCHES: [&str; 4] = ["amd64", "arm64", "riscv64", "armhf"];
/// The full package and the runtime-only one.
const PACKAGES: [&str; 2] = ["gatewayd", "gatewayd-runtime"];
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn packages() -> PathBuf {
    let dir = std::env::var_os("GATEWAYD_PACKAGES")
        .expect("GATEWAYD_PACKAGES is not set: tests/all.sh runs these after packaging/build.sh");
    PathBuf::from(dir)
}

/// The package files present: architecture, package, file (a build of some
/// architectures or one flavour tests those).
fn built(extension: &str) -> Vec<(&'static str, &'static str, PathBuf)> {
    let found: Vec<_> = ARCHES
        .iter()
        .flat_map(|arch| PACKAGES.iter().map(move |package| (*arch, *package)))
        .map(|(arch, package)| {
            let file = packages().join(format!("{package}_{VERSION}_{arch}.{extension}"));
            (arch, package, file)
        })
        .filter(|(_, _, file)| file.exists())
        .collect();
    assert!(
        !found.is_empty(),
        "no .{extension} in {}",
        packages().display()
    );
    found
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// `Name: value` fields of a control file (continuation lines dropped).
fn fields(control: &str) -> BTreeMap<String, String> {
    control
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// How `readelf -h`'s Machine line ends for each architecture.
fn machine(arch: &str) -> &'static str {
    match arch {
        "amd64" => "X86-64",
        "arm64" => "AArch64",
        "riscv64" => "RISC-V",
        _ => "ARM",
    }
}

/// The package the one named conflicts with and replaces.
fn other(package: &str) -> &'static str {
    if package == "gatewayd" {
        "gatewayd-runtime"
    } else {
        "gatewayd"
    }
}

/// Static binaries for the package's CPU: no program interpreter.
fn assert_static_for(arch: &str, binary: &Path) {
    let program = ok(&run("readelf", &["-lh", binary.to_str().unwrap()]));
    assert!(
        !program.contains("program interpreter"),
        "{} is dynamically linked",
        binary.display()
    );
    let named = program
        .lines()
        .find_map(|l| l.trim().strip_prefix("Machine:"))
        .map(str::trim);
    assert!(
        named.is_some_and(|m| m.ends_with(machine(arch))),
        "{} is not for {arch}:\n{program}",
        binary.display()
    );
}

#[test]
#[ignore = "needs the packages: tests/all.sh"]
fn each_deb_holds_the_service_its_docs_and_a_conffile() {
    for (arch, package, deb) in built("deb") {
        let deb = deb.to_str().unwrap();
        let info = fields(&ok(&run("dpkg-deb", &["-f", deb])));
        assert_eq!(info["Package"], package);
        assert_eq!(info["Version"], VERSION);
        assert_eq!(info["Architecture"], arch);
        assert_eq!(info["Depends"], "adduser");
        assert_eq!(info["Conflicts"], other(package));
        assert_eq!(info["Replaces"], other(package));
        let kib: u64 = info["Installed-Size"].parse().unwrap();
        assert!(kib > 1024, "Installed-Size {kib} KiB");

        let listing = ok(&run("dpkg-deb", &["-c", deb]));
        for file in [
            "./usr/bin/gatewayd",
            "./usr/bin/gatewayctl",
            "./usr/lib/systemd/system/gatewayd.service",
            "./usr/lib/systemd/system/gatewayd.socket",
            "./etc/gatewayd/gatewayd.toml",
            "./usr/share/man/man1/gatewayd.1.gz",
            "./usr/share/man/man1/gatewayd-serve.1.gz",
            "./usr/share/man/man1/gatewayctl.1.gz",
            "./usr/share/man/man1/gatewayctl-push-bundle.1.gz",
            "./usr/share/man/man1/gatewayctl-new.1.gz",
            "./usr/share/bash-completion/completions/gatewayctl",
            "./usr/share/zsh/vendor-completions/_gatewayctl",
            "./usr/share/fish/vendor_completions.d/gatewayctl.fish",
            &format!("./usr/share/doc/{package}/copyright"),
            &format!("./usr/share/doc/{package}/changelog.gz"),
        ] {
            let line = listing
                .lines()
                .find(|l| l.ends_with(&format!(" {file}")))
                .unwrap_or_else(|| panic!("{deb} lacks {file}:\n{listing}"));
            assert!(line.contains(" root/root "), "{line}");
        }
        assert_eq!(
            ok(&run("dpkg-deb", &["-I", deb, "conffiles"])).trim(),
            "/etc/gatewayd/gatewayd.toml"
        );

        let tree = tempfile::tempdir().unwrap();
        ok(&run(
            "dpkg-deb",
            &["-x", deb, tree.path().to_str().unwrap()],
        ));
        for binary in ["gatewayd", "gatewayctl"] {
            assert_static_for(arch, &tree.path().join("usr/bin").join(binary));
        }
        let unit = harness::repo_root().join("packaging/gatewayd.service");
        assert_eq!(
            std::fs::read(tree.path().join("usr/lib/systemd/system/gatewayd.service")).unwrap(),
            std::fs::read(unit).unwrap()
        );
    }
}

/// lintian, pedantic: no error, and no warning either.
#[test]
#[ignore = "needs the packages: tests/all.sh"]
fn lintian_finds_no_error() {
    let debs: Vec<String> = built("deb")
        .into_iter()
        .map(|(_, _, deb)| deb.to_string_lossy().into_owned())
        .collect();
    // One run for all: lintian's start-up is a good part of its time.
    let mut args = vec!["--fail-on", "error", "--pedantic"];
    args.extend(debs.iter().map(String::as_str));
    let output = run("lintian", &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "lintian {debs:?}:\n{text}");
    // Nothing at all is reported today (the overrides in
    // packaging/deb/lintian-overrides say why each is there).
    let findings: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["E: ", "W: ", "I: ", "P: "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(findings.is_empty(), "{text}");
}

#[test]
#[ignore = "needs the packages: tests/all.sh"]
fn each_ipk_is_what_opkg_reads() {
    for (arch, package, ipk) in built("ipk") {
        let ipk_path = ipk.to_str().unwrap();
        // opkg's container: an ar archive of three members, in this order.
        let members = ok(&run("ar", &["t", ipk_path]));
        assert_eq!(
            members.lines().collect::<Vec<_>>(),
            ["debian-binary", "control.tar.gz", "data.tar.gz"]
        );
        assert_eq!(ok(&run("ar", &["p", ipk_path, "debian-binary"])), "2.0\n");

        let tree = tempfile::tempdir().unwrap();
        let t = tree.path();
        let extract = |member: &str, into: &str| {
            std::fs::create_dir_all(t.join(into)).unwrap();
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "ar p '{ipk_path}' {member} | tar -xzf - -C '{}'",
                    t.join(into).display()
                ))
                .status()
                .unwrap();
            assert!(status.success(), "extracting {member} of {ipk_path}");
        };
        extract("control.tar.gz", "control");
        extract("data.tar.gz", "data");

        let control = std::fs::read_to_string(t.join("control/control")).unwrap();
        let info = fields(&control);
        assert_eq!(info["Package"], package);
        assert_eq!(info["Conflicts"], other(package));
        assert_eq!(info["Version"], VERSION);
        let expected_arch = match arch {
            "amd64" => "x86_64",
            "arm64" => "aarch64_generic",
            "riscv64" => "riscv64_riscv64",
            _ => "arm_cortex-a7_neon-vfpv4",
        };
        assert_eq!(info["Architecture"], expected_arch, "{control}");
        let bytes: u64 = info["Installed-Size"].parse().unwrap();
        let binaries: u64 = ["gatewayd", "gatewayctl"]
            .iter()
            .map(|b| t.join("data/usr/bin").join(b).metadata().unwrap().len())
            .sum();
        assert!(bytes >= binaries, "Installed-Size {bytes} < {binaries}");
        assert_eq!(
            std::fs::read_to_string(t.join("control/conffiles"))
                .unwrap()
                .trim(),
            "/etc/gatewayd/gatewayd.toml"
        );

        for binary in ["gatewayd", "gatewayctl"] {
            assert_static_for(arch, &t.join("data/usr/bin").join(binary));
        }
        let init = t.join("data/etc/init.d/gatewayd");
        let script = std::fs::read_to_string(&init).unwrap();
        assert!(script.starts_with("#!/bin/sh /etc/rc.common\n"), "{script}");
        assert!(script.contains("USE_PROCD=1"), "{script}");
        assert!(
            script.contains("procd_set_param command /usr/bin/gatewayd serve"),
            "{script}"
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(init.metadata().unwrap().permissions().mode() & 0o777, 0o755);
        for shell_script in [
            init.clone(),
            t.join("control/postinst"),
            t.join("control/prerm"),
        ] {
            ok(&run("sh", &["-n", shell_script.to_str().unwrap()]));
        }

        // The OpenWrt config: state on flash, the socket in RAM, and the
        // daemon accepts it.
        let config_path = t.join("data/etc/gatewayd/gatewayd.toml");
        let config =
            gatewayd::config::Config::load(&config_path, true).unwrap_or_else(|e| panic!("{e:#}"));
        let text = std::fs::read_to_string(&config_path).unwrap();
        assert!(text.contains("\nstate_dir = \"/opt/gatewayd\"\n"), "{text}");
        assert!(
            text.contains("\nsocket = \"/var/run/gatewayd/admin.sock\"\n"),
            "{text}"
        );
        drop(config);
    }
}

/// Purges the package when the install test ends, passed or not, so a
/// failure does not leave this machine changed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all("/etc/gatewayd/keys");
        let _ = run("dpkg", &["--purge", "gatewayd"]);
    }
}

fn dpkg(args: &[&str]) -> String {
    let output = run("dpkg", args);
    format!("{}{}", ok(&output), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the packages and root: tests/all.sh"]
async fn the_deb_installs_serves_as_its_user_takes_a_push_and_purges() {
    let deb = packages().join(format!("gatewayd_{VERSION}_amd64.deb"));
    assert!(deb.exists(), "{} is missing", deb.display());
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "installing a package needs root"
    );
    if run("dpkg", &["-s", "gatewayd"]).status.success() {
        dpkg(&["--purge", "gatewayd"]);
    }
    assert!(
        !Path::new("/usr/bin/gatewayd").exists(),
        "/usr/bin/gatewayd exists and no package owns it"
    );

    let _installed = Installed;
    dpkg(&["-i", deb.to_str().unwrap()]);

    // What the package put in place, and what postinst did.
    let passwd = ok(&run("getent", &["passwd", "gatewayd"]));
    assert!(passwd.contains(":/var/lib/gatewayd:"), "{passwd}");
    ok(&run("getent", &["group", "gatewayd"]));
    for file in [
        "/usr/bin/gatewayd",
        "/usr/bin/gatewayctl",
        "/usr/lib/systemd/system/gatewayd.service",
        "/usr/share/man/man1/gatewayctl.1.gz",
    ] {
        assert!(Path::new(file).exists(), "{file}");
    }
    // The bash completion loads and registers itself for gatewayctl.
    let completion = ok(&run(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/gatewayctl && complete -p gatewayctl",
        ],
    ));
    assert!(completion.contains("gatewayctl"), "{completion}");
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants/gatewayd.service");
    assert!(wants.is_symlink(), "postinst did not enable the service");
    let conffiles = dpkg(&["--status", "gatewayd"]);
    assert!(
        conffiles.contains(" /etc/gatewayd/gatewayd.toml "),
        "{conffiles}"
    );
    for (path, expected) in [
        ("/etc/gatewayd", "root gatewayd 750"),
        ("/etc/gatewayd/gatewayd.toml", "root gatewayd 640"),
    ] {
        let mode = ok(&run("stat", &["-c", "%U %G %a", path]));
        assert_eq!(mode.trim(), expected, "{path}");
    }
    let manual = run("man", &["-w", "gatewayd"]);
    if manual.status.success() {
        assert!(String::from_utf8_lossy(&manual.stdout).contains("gatewayd.1"));
    }

    // An operator's edits to the conffile: a free port (3000 may be taken
    // on a test machine) and a trusted key.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ctl = |args: &[&str]| -> String {
        ok(&Command::new("/usr/bin/gatewayctl")
            .args(args)
            .current_dir(w)
            .output()
            .unwrap())
    };
    ctl(&["keygen", "-o", "release"]);
    std::fs::create_dir_all("/etc/gatewayd/keys").unwrap();
    std::fs::copy(w.join("release.pub"), "/etc/gatewayd/keys/release.pub").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    for (path, mode) in [
        ("/etc/gatewayd/keys", 0o755),
        ("/etc/gatewayd/keys/release.pub", 0o644),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let port = free_port();
    let config = std::fs::read_to_string("/etc/gatewayd/gatewayd.toml").unwrap();
    let config = config
        .replace(
            "listen = \"127.0.0.1:3000\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            "trusted_keys = []",
            "trusted_keys = [\"/etc/gatewayd/keys/release.pub\"]",
        );
    std::fs::write("/etc/gatewayd/gatewayd.toml", config).unwrap();

    // What systemd does for the unit: its directories (StateDirectory=,
    // RuntimeDirectory=), its user, its umask, and the notify and watchdog
    // environment; then the unit's ExecStart.
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/gatewayd.service").unwrap();
    let exec_start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut exec = exec_start.split_whitespace();
    let binary = exec.next().unwrap();
    let args: Vec<&str> = exec.collect();
    assert_eq!(args, ["serve", "--config", "/etc/gatewayd/gatewayd.toml"]);
    for (dir, mode) in [("/var/lib/gatewayd", "0700"), ("/run/gatewayd", "0750")] {
        ok(&run(
            "install",
            &["-d", "-o", "gatewayd", "-g", "gatewayd", "-m", mode, dir],
        ));
    }
    let program = Program {
        runner: [
            "sh",
            "-c",
            "umask 0077; exec setpriv --reuid=gatewayd --regid=gatewayd --init-groups \"$0\" \"$@\"",
        ]
        .map(String::from)
        .to_vec(),
        binary: Some(PathBuf::from(binary)),
    };
    let mut gateway = Gateway::serve_with(
        &program,
        Path::new("/etc/gatewayd/gatewayd.toml"),
        &[("WATCHDOG_USEC", "1000000")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gateway.addr.port(), port);
    let owner = ok(&run("stat", &["-c", "%U %a", "/run/gatewayd/admin.sock"]));
    assert_eq!(owner.trim(), "gatewayd 660");
    let pings = gateway
        .notifications_during(Duration::from_millis(2600))
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    // Every 500 ms (half of WATCHDOG_USEC): 5 in 2.6 s; 4 allows one late.
    assert!(pings >= 4, "{pings} watchdog pings in 2.6 s");

    // No app yet: 503. Then a push with the installed gatewayctl to the
    // installed socket path.
    let url = format!("http://127.0.0.1:{port}/hello");
    assert_eq!(get(&url).await.0, 503);
    let hello = examples().join("hello");
    ctl(&[
        "bundle",
        hello.to_str().unwrap(),
        "--key",
        "release.key",
        "--version",
        "1.0.0",
        "-o",
        "hello.bundle",
    ]);
    let pushed = ctl(&[
        "push",
        "bundle",
        "hello.bundle",
        "--to",
        "unix:///run/gatewayd/admin.sock",
    ]);
    assert!(pushed.contains("1.0.0"), "{pushed}");
    let (status, body) = get(&url).await;
    assert_eq!((status, body.trim()), (200, "Hello from gatewayd!"));
    let owner = ok(&run("stat", &["-c", "%U", "/var/lib/gatewayd/generations"]));
    assert_eq!(owner.trim(), "gatewayd");

    gateway.signal(libc::SIGTERM);
    let exit = gateway
        .wait(Duration::from_secs(20))
        .expect("no exit after SIGTERM");
    assert!(exit.success(), "{exit}:\n{}", gateway.logs());

    // remove: the program goes, the config and the apps stay.
    dpkg(&["--remove", "gatewayd"]);
    assert!(!Path::new("/usr/bin/gatewayd").exists());
    assert!(Path::new("/etc/gatewayd/gatewayd.toml").exists());
    assert!(Path::new("/var/lib/gatewayd/generations").exists());

    // purge: everything goes but the system user (Debian policy keeps it)
    // and what the operator added under /etc (removed here first).
    std::fs::remove_dir_all("/etc/gatewayd/keys").unwrap();
    dpkg(&["--purge", "gatewayd"]);
    for gone in [
        "/etc/gatewayd",
        "/var/lib/gatewayd",
        "/run/gatewayd",
        "/usr/share/doc/gatewayd",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
    assert!(!wants.is_symlink(), "the enable link is left after purge");
    assert!(!run("dpkg", &["-s", "gatewayd"]).status.success());
    ok(&run("getent", &["passwd", "gatewayd"]));
}

/// The gatewayd of the amd64 gatewayd-runtime package: no compiler (its
/// `--version` says so, and it is much smaller than the full one), refuses a
/// bundle without code for it, naming the command that makes one, and runs
/// a bundle made with `--target`; `status` says it cannot compile.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the packages: tests/all.sh"]
async fn the_runtime_only_gatewayd_runs_bundles_precompiled_for_it_only() {
    let extract = |package: &str| {
        let deb = packages().join(format!("{package}_{VERSION}_amd64.deb"));
        assert!(deb.exists(), "{} is missing", deb.display());
        let tree = tempfile::tempdir().unwrap();
        ok(&run(
            "dpkg-deb",
            &["-x", deb.to_str().unwrap(), tree.path().to_str().unwrap()],
        ));
        tree
    };
    let (runtime, full) = (extract("gatewayd-runtime"), extract("gatewayd"));
    let binary = runtime.path().join("usr/bin/gatewayd");
    let version = ok(&run(binary.to_str().unwrap(), &["--version"]));
    assert!(version.contains("runtime only"), "{version}");
    let full_version = ok(&run(
        full.path().join("usr/bin/gatewayd").to_str().unwrap(),
        &["--version"],
    ));
    assert!(!full_version.contains("runtime only"), "{full_version}");
    // Without Cranelift the binary loses a fifth at CI's unoptimised test
    // profile (over 40% at the board profile): a build that pulled the
    // compiler back in would lose nothing.
    let size = |tree: &tempfile::TempDir| {
        tree.path()
            .join("usr/bin/gatewayd")
            .metadata()
            .unwrap()
            .len()
    };
    let (runtime_size, full_size) = (size(&runtime), size(&full));
    assert!(
        runtime_size * 100 < full_size * 90,
        "runtime-only gatewayd {runtime_size} bytes, full {full_size}"
    );

    let service = Service::new();
    let program = Program {
        runner: Vec::new(),
        binary: Some(binary),
    };
    let gateway = service.start_program(&program, &[]);
    assert!(
        gateway.logs().contains("runtime only: cannot compile"),
        "{}",
        gateway.logs()
    );
    let engine = &service.status()["engine"];
    assert_eq!(engine["compiles"], false, "{engine}");
    assert_eq!(engine["target"], "x86_64-unknown-linux-gnu", "{engine}");

    // A plain bundle: refused, naming the component, the missing code and
    // the command; nothing changes.
    let plain = service.bundle("1.0.0", "release");
    let refusal = rejected(&service.push(&plain));
    for part in [
        "runtime-only build",
        "component \"hello\"",
        "it carries no precompiled code",
        "gatewayctl bundle --target x86_64-unknown-linux-gnu",
    ] {
        assert!(refusal.contains(part), "{part:?} not in: {refusal}");
    }
    assert_eq!(get(&gateway.url("/hello")).await.0, 503);
    // Code for another board only: refused, saying which it carries.
    let other_board = service.bundle_with(
        "1.0.1",
        "release",
        &["--target", "aarch64-unknown-linux-gnu"],
    );
    let refusal = rejected(&service.push(&other_board));
    assert!(
        refusal.contains("it carries code for aarch64-unknown-linux-gnu only"),
        "{refusal}"
    );

    // Made for this board: runs, from the code it brought.
    let precompiled = service.bundle_with(
        "1.0.2",
        "release",
        &["--target", "x86_64-unknown-linux-gnu"],
    );
    ok(&service.push(&precompiled));
    let (status, body) = get(&gateway.url("/hello")).await;
    assert_eq!((status, body.trim()), (200, "Hello from gatewayd!"));
    let status = ok(&ctl(service.path(), &["status", "--to", &service.to()]));
    assert!(
        status.contains("runtime only: cannot compile, accepts only bundles with code for x86_64-unknown-linux-gnu"),
        "{status}"
    );
    assert!(status.contains("from the cache"), "{status}");

    // Told to refuse precompiled code, it would have nothing to run: a
    // config error naming the key.
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("gatewayd.toml");
    std::fs::write(&path, "[update]\naccept_precompiled = false\n").unwrap();
    let error = match Gateway::serve_with(&program, &path, &[]) {
        Ok(_) => panic!("a runtime-only gatewayd started with accept_precompiled = false"),
        Err(error) => error,
    };
    assert!(
        error.contains("update.accept_precompiled = false: this gatewayd is a runtime-only build"),
        "{error}"
    );
}
