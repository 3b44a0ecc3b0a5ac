//! `packaging/`: the systemd unit is valid and stays hardened, checked with
//! systemd's own `systemd-analyze` (this machine's systemd need not run).

use std::process::Command;

/// The unit, with `ExecStart` pointing at this build of gatewayd (verify
/// checks that the command exists), written to a temporary folder.
fn unit() -> (tempfile::TempDir, std::path::PathBuf) {
    let text =
        std::fs::read_to_string(crate::harness::repo_root().join("packaging/gatewayd.service"))
            .unwrap();
    assert!(text.contains("ExecStart=/usr/bin/gatewayd serve"), "{text}");
    let text = text.replace("/usr/bin/gatewayd", env!("CARGO_BIN_EXE_gatewayd"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatewayd.service");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn analyze(args: &[&str], unit: &std::path::Path) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("running systemd-analyze (apt-get install systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The optional socket unit verifies next to the service it activates.
#[test]
fn the_socket_unit_verifies() {
    let (dir, _service) = unit();
    let socket = dir.path().join("gatewayd.socket");
    std::fs::copy(
        crate::harness::repo_root().join("packaging/gatewayd.socket"),
        &socket,
    )
    .unwrap();
    let (ok, text) = analyze(&["verify"], &socket);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn the_unit_verifies_and_its_exposure_stays_low() {
    let (_dir, unit) = unit();
    let (ok, text) = analyze(&["verify"], &unit);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    let (_, text) = analyze(&["security", "--offline=true"], &unit);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for gatewayd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // 1.2 today (README, the unit's comment); a dropped option shows here.
    assert!(exposure <= 1.2, "exposure {exposure}:\n{text}");
    for kept in ["Type=notify", "User=gatewayd", "StateDirectory=gatewayd"] {
        assert!(
            std::fs::read_to_string(&unit).unwrap().contains(kept),
            "{kept}"
        );
    }
}
