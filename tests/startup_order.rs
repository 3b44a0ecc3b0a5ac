//! cross/linker, the linker of the board builds: linking a `gatewayd` from one
//! Rust object (fat LTO, one codegen unit, as the `board` profile does), it
//! places the functions its list names together, for each board and for
//! x86_64, and the program still runs. Real rustc, real cross gcc and
//! binutils (cross/setup.sh installs them; tests/all.sh runs it), real QEMU.

use crate::harness::repo_root;

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// A program whose `f01` and `second` are far apart as compiled: rustc
/// emits the other nineteen fillers, `main` and `first` between them.
const PROGRAM: &str = r#"
#[inline(never)]
pub fn first(x: u64) -> u64 { std::hint::black_box(x).wrapping_mul(31) ^ 7 }
macro_rules! fillers { ($($name:ident $k:literal)*) => { $(
    #[inline(never)]
    pub fn $name(v: &mut [u64]) -> u64 {
        let mut acc = 0u64;
        for i in 0..v.len() {
            v[i] = v[i].wrapping_mul($k) ^ (v[i] >> 13);
            acc = acc.rotate_left(7) ^ v[i].wrapping_add(i as u64);
            if acc % 3 == 0 { v[i] ^= acc; } else if acc % 5 == 0 { v[i] = v[i].wrapping_sub(acc); }
        }
        acc ^ std::hint::black_box(v.len() as u64)
    }
)* } }
fillers!(f01 3 f02 5 f03 7 f04 11 f05 13 f06 17 f07 19 f08 23 f09 29 f10 31
    f11 37 f12 41 f13 43 f14 47 f15 53 f16 59 f17 61 f18 67 f19 71 f20 73);
#[inline(never)]
pub fn second(x: u64) -> u64 { std::hint::black_box(x).rotate_left(5) + 3 }
fn main() {
    let mut v: Vec<u64> = std::env::args().map(|a| a.len() as u64).collect();
    let fs = [f01, f02, f03, f04, f05, f06, f07, f08, f09, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19, f20];
    let filled: u64 = fs.iter().map(|f| f(&mut v)).fold(0, |a, b| a ^ b);
    println!("{}", second(first(v.len() as u64)) ^ (filled & 0));
}
"#;

/// How the list names a function: the first 16 hex digits of the SHA-256
/// of its demangled name without crate hashes.
fn key(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..16].to_string()
}

/// (target, QEMU runner): x86_64 runs natively.
const TARGETS: [(&str, Option<&str>); 4] = [
    ("x86_64-unknown-linux-gnu", None),
    ("aarch64-unknown-linux-gnu", Some("qemu-aarch64-static")),
    ("riscv64gc-unknown-linux-gnu", Some("qemu-riscv64-static")),
    ("armv7-unknown-linux-gnueabihf", Some("qemu-arm-static")),
];

/// Links PROGRAM for `target` through cross/linker as `gatewayd-test`, with
/// `list` as the start-up functions (None: no list); returns the binary.
fn link(dir: &Path, target: &str, list: Option<&str>) -> std::path::PathBuf {
    let out = dir.join(format!(
        "{}/gatewayd-test",
        list.map_or("plain", |_| "ordered")
    ));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let source = dir.join("gatewayd.rs");
    std::fs::write(&source, PROGRAM).unwrap();
    let mut rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()));
    rustc
        .args([
            "--edition=2021",
            "-O",
            "-C",
            "lto=fat",
            "-C",
            "codegen-units=1",
        ])
        .args([
            "-C",
            "target-feature=+crt-static",
            "-C",
            "symbol-mangling-version=v0",
        ])
        .args(["--target", target, "-o"])
        .arg(&out)
        .arg("-C")
        .arg(format!(
            "linker={}",
            repo_root().join("cross/linker").display()
        ))
        .arg(&source)
        .env_remove("GATEWAYD_STARTUP_FUNCTIONS");
    if let Some(list) = list {
        let path = dir.join("startup-functions.txt");
        std::fs::write(&path, list).unwrap();
        rustc.env("GATEWAYD_STARTUP_FUNCTIONS", &path);
    }
    let output = rustc.output().expect("rustc runs");
    assert!(
        output.status.success(),
        "linking for {target} failed (cross/setup.sh installs the cross compilers):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Address of the function whose v0 name ends with `name`.
fn address(binary: &Path, name: &str) -> u64 {
    let nm = Command::new("nm").arg(binary).output().unwrap();
    let text = String::from_utf8(nm.stdout).unwrap();
    let suffix = format!("{}{name}", name.len());
    let line = text
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|s| s.starts_with("_R") && s.ends_with(&suffix))
        })
        .unwrap_or_else(|| panic!("{name} not in {}:\n{text}", binary.display()));
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
}

fn run(binary: &Path, runner: Option<&str>) -> String {
    let output = match runner {
        Some(qemu) => Command::new(qemu).arg(binary).args(["a", "bb"]).output(),
        None => Command::new(binary).args(["a", "bb"]).output(),
    }
    .unwrap();
    assert!(
        output.status.success(),
        "{} failed: {output:?}",
        binary.display()
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_listed_start_up_functions_are_placed_together_on_every_board() {
    for (target, runner) in TARGETS {
        let dir = tempfile::tempdir().unwrap();
        let plain = link(dir.path(), target, None);
        let apart = address(&plain, "f01").abs_diff(address(&plain, "second"));
        assert!(
            apart > 1024,
            "{target}: the fillers no longer lie between f01 and second ({apart} bytes)"
        );

        // Listed as cross/startup-profile.sh lists them: f01 and second run
        // on every start, f03 and f18 only on starts that compile; a
        // function the program lacks is ignored.
        let list = format!(
            "# comment\n{}\n{}\n{} compile\n{} compile\n{}\n",
            key("gatewayd::f01"),
            key("gatewayd::second"),
            key("gatewayd::f03"),
            key("gatewayd::f18"),
            key("gatewayd::gone")
        );
        let ordered = link(dir.path(), target, Some(&list));
        let [f01, second, f03, f18] =
            ["f01", "second", "f03", "f18"].map(|name| address(&ordered, name));
        assert!(
            f01.abs_diff(second) < 512 && f03.abs_diff(f18) < 512,
            "{target}: after ordering f01 and second are {} bytes apart, f03 and f18 {}",
            f01.abs_diff(second),
            f03.abs_diff(f18)
        );
        assert!(
            f03.min(f18) > f01.max(second) || f03.max(f18) < f01.min(second),
            "{target}: the compile tier lies among the warm one"
        );
        let report =
            std::fs::read_to_string(ordered.with_file_name("gatewayd-test.startup-order")).unwrap();
        assert!(report.contains("4 of the 5 listed"), "{target}: {report}");

        assert_eq!(run(&plain, runner), run(&ordered, runner), "{target}");
    }
}

#[test]
fn a_missing_or_malformed_list_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("gatewayd.rs");
    std::fs::write(&source, PROGRAM).unwrap();
    let malformed = dir.path().join("malformed.txt");
    std::fs::write(&malformed, "0123456789abcdef warm\n").unwrap();
    for (list, expected) in [
        (
            dir.path().join("nowhere.txt"),
            "nowhere.txt (GATEWAYD_STARTUP_FUNCTIONS) does not exist: make it with cross/startup-profile.sh",
        ),
        (
            malformed,
            "malformed.txt: unknown tier 'warm' in line '0123456789abcdef warm'",
        ),
    ] {
        let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .args(["-O", "-C", "lto=fat", "-C", "codegen-units=1", "-o"])
            .arg(dir.path().join("gatewayd-test"))
            .arg("-C")
            .arg(format!(
                "linker={}",
                repo_root().join("cross/linker").display()
            ))
            .arg(&source)
            .env("GATEWAYD_STARTUP_FUNCTIONS", &list)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}
