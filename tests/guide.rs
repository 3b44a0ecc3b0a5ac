//! The user guide (`docs/guide/`) runs as written: every shell block of its pages
//! is run, page after page in the index's order, in one bash session in a scratch
//! folder, with this build's `gatewayd` and `gatewayctl` first on PATH; the text
//! block after one says what its output must contain.
//!
//! The conventions, which keep the pages readable as documentation:
//! - ```` ```sh run ````: run. Every shell block in the guide must be one, so no
//!   command in it goes untested, or
//! - ```` ```sh test=MODULE::NAME ````: not run here (it needs a board, root or a
//!   long cross build); the end-to-end test named does the same, and must exist.
//! - ```` ```text output ````: each of its lines must appear, in order, within
//!   lines of the output of the run block before it; `...` stands for any text
//!   (a duration, a machine's architecture).
//! - ```` ```text log ````: the same, in the log of the gatewayd running (what
//!   the reader sees in its terminal), waited for up to 60 s: what a trigger did
//!   shows there, not in the output of the command that caused it.
//! - A line that starts `gatewayd up` or `gatewayd serve` is what a reader runs in
//!   a terminal of its own: it runs in the background, with the next block waiting
//!   until it prints that it serves, and its output (so far) becomes the block's
//!   output. Starting another stops the one before (the reader's Ctrl-C); all stop
//!   at the end.

use crate::harness;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Block {
    /// `page.md:line`, for messages.
    place: String,
    lines: Vec<String>,
    expected: Vec<String>,
}

/// The pages in the index's order (the links of its numbered list).
fn pages(guide: &Path) -> Vec<PathBuf> {
    let index = std::fs::read_to_string(guide.join("README.md")).unwrap();
    index
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .filter_map(|l| {
            let start = l.find("](")? + 2;
            let end = start + l[start..].find(')')?;
            Some(guide.join(&l[start..end]))
        })
        .collect()
}

fn blocks(page: &Path) -> Vec<Block> {
    let name = page.file_name().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(page).unwrap();
    let mut blocks: Vec<Block> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let body: Vec<String> = lines
            .by_ref()
            .take_while(|(_, l)| !l.starts_with("```"))
            .map(|(_, l)| l.to_string())
            .collect();
        let place = format!("{name}:{}", n + 1);
        match info.trim() {
            "sh run" => blocks.push(Block {
                place,
                lines: body,
                expected: Vec::new(),
            }),
            "text log" => {
                let body: Vec<String> = body.into_iter().filter(|l| !l.trim().is_empty()).collect();
                let patterns: Vec<String> =
                    body.iter().map(|l| shell_quote(&log_pattern(l))).collect();
                blocks.push(Block {
                    place,
                    lines: vec![format!("guide_log {}", patterns.join(" "))],
                    expected: body,
                })
            }
            "text output" => {
                let last = blocks
                    .last_mut()
                    .unwrap_or_else(|| panic!("{place}: output block before any run block"));
                assert!(
                    last.expected.is_empty(),
                    "{place}: two output blocks for one run block"
                );
                last.expected = body.into_iter().filter(|l| !l.trim().is_empty()).collect();
            }
            info if info.starts_with("sh test=") => {
                let name = &info["sh test=".len()..];
                assert_test_exists(&place, name);
            }
            info if ["sh", "bash", "shell", "console"]
                .iter()
                .any(|s| info.split_whitespace().next() == Some(s)) =>
            {
                panic!(
                    "{place}: a shell block that is not run (```sh run): its commands would go untested"
                )
            }
            _ => {}
        }
    }
    blocks
}

/// A ```` ```sh test=MODULE::NAME ```` block needs a board or root: the test
/// named, which does the same on CI's machine, must exist.
fn assert_test_exists(place: &str, name: &str) {
    let (module, function) = name
        .split_once("::")
        .unwrap_or_else(|| panic!("{place}: test={name}: expected MODULE::NAME"));
    let file = harness::repo_root().join(format!("tests/{module}.rs"));
    let source = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{place}: test={name}: {}: {e}", file.display()));
    assert!(
        source.contains(&format!("fn {function}(")),
        "{place}: test={name}: no such test in {}",
        file.display()
    );
}

/// Bash that runs every block, each one's output in `out-<i>`.
fn script(blocks: &[Block], dir: &Path) -> String {
    let mut script = String::from(
        r#"set -euo pipefail
guide_servers=()
guide_n=0
guide_stop() {
  local pid
  for pid in "${guide_servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${guide_servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  guide_servers=()
}
trap guide_stop EXIT
guide_serve() {
  guide_stop
  guide_n=$((guide_n + 1))
  local log="$GUIDE_DIR/server-$guide_n.log" i
  "$@" >"$log" 2>&1 &
  guide_servers+=($!)
  for i in $(seq 1 1200); do
    # Its banner, not a request: a probe would count as a visit to the app.
    if grep -qiE 'serving (app .*)?on http://' "$log"; then cat "$log"; return 0; fi
    if ! kill -0 "${guide_servers[-1]}" 2>/dev/null; then
      cat "$log"; echo "guide: '$*' exited"; return 1
    fi
    sleep 0.5
  done
  cat "$log"; echo "guide: '$*' not serving after 600 s"; return 1
}
# Waits until the running gateway's log has every pattern (extended regex),
# then prints it.
guide_log() {
  local log="$GUIDE_DIR/server-$guide_n.log" i p missing
  for i in $(seq 1 120); do
    missing=
    for p in "$@"; do grep -qE -- "$p" "$log" || missing=$p; done
    if [ -z "$missing" ]; then cat "$log"; return 0; fi
    sleep 0.5
  done
  cat "$log"; echo "guide: no log line matching '$missing' after 60 s"; return 1
}
"#,
    );
    for (i, block) in blocks.iter().enumerate() {
        script.push_str("{\n");
        for line in &block.lines {
            let trimmed = line.trim_start();
            if trimmed.starts_with("gatewayd up") || trimmed.starts_with("gatewayd serve") {
                script.push_str(&format!("guide_serve {trimmed}\n"));
            } else {
                assert!(
                    !line.contains("gatewayd up") && !line.contains("gatewayd serve"),
                    "{}: start gatewayd on a line of its own: {line}",
                    block.place
                );
                script.push_str(line);
                script.push('\n');
            }
        }
        script.push_str(&format!("}} >{}/out-{i} 2>&1\n", dir.display()));
    }
    script
}

/// An expected line as an extended regular expression: its text, `...` any.
fn log_pattern(expected: &str) -> String {
    expected
        .trim()
        .split("...")
        .map(|part| {
            part.chars()
                .map(|c| match c {
                    '\\' | '.' | '[' | ']' | '(' | ')' | '*' | '+' | '?' | '{' | '}' | '|'
                    | '^' | '$' => format!("\\{c}"),
                    c => c.to_string(),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".*")
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Each expected line within an output line, in order.
fn check(block: &Block, output: &str) -> Result<(), String> {
    let mut lines = output.lines();
    for expected in &block.expected {
        let expected = expected.trim();
        if !lines.any(|l| matches(l, expected)) {
            return Err(format!(
                "{}: output lacks {expected:?} (or it is out of order):\n{output}",
                block.place
            ));
        }
    }
    Ok(())
}

/// `expected` within `line`, where `...` in it stands for any text.
fn matches(line: &str, expected: &str) -> bool {
    let mut rest = line;
    for part in expected.split("...").filter(|p| !p.is_empty()) {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn output_lines_match_with_elisions() {
    assert!(matches("app up 2s; ok", "app up ...; ok"));
    assert!(matches("[hello]    Compiling x", "Compiling"));
    assert!(!matches("app up 2s", "app down ..."));
    assert!(!matches("b then a", "a...b"));
}

#[test]
fn log_lines_become_patterns_grep_matches() {
    let pattern = log_pattern(r#"[jobs] received 5 bytes: job (1) ... $x.y"#);
    let quoted = shell_quote(&pattern);
    let line = "2026 INFO [jobs] received 5 bytes: job (1) at 12:00 $x.y";
    for (text, found) in [(line, true), ("[jobs] received 5 bytes: job 1", false)] {
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s\\n' \"$1\" | grep -qE -- {quoted}"))
            .arg("-")
            .arg(text)
            .status()
            .unwrap();
        assert_eq!(status.success(), found, "{pattern} on {text:?}");
    }
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
}

#[test]
fn the_guide_runs_as_written() {
    let guide = harness::repo_root().join("docs/guide");
    let pages = pages(&guide);
    assert!(pages.len() >= 2, "no pages found in the guide's index");
    let blocks: Vec<Block> = pages.iter().flat_map(|p| blocks(p)).collect();

    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let outputs = tmp.path().join("outputs");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&outputs).unwrap();
    let bin = harness::gatewayctl().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = script(&blocks, &outputs);

    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("GUIDE_DIR", &outputs)
        // The guide's gateways keep their state (compiled code) here, not in ~.
        .env("XDG_STATE_HOME", tmp.path().join("state"))
        .env("CARGO_BUILD_JOBS", "1")
        // As on a reader's machine: CI's cache folder would take the builds
        // away from where the apps' spin.toml files look.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("GATEWAYCTL_TO")
        // Its own process group, so a timeout stops the gateways it started too.
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(1200);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: kill(2) on the process group this test created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Whatever the pages left running (the brokers a page starts), even when
    // it stopped half-way.
    // SAFETY: kill(2) on the process group this test created.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };

    let mut report = String::new();
    let mut failed = !status.success();
    for (i, block) in blocks.iter().enumerate() {
        let Ok(output) = std::fs::read_to_string(outputs.join(format!("out-{i}"))) else {
            report.push_str(&format!("--- {}: not run\n", block.place));
            continue;
        };
        report.push_str(&format!("--- {}\n{output}", block.place));
        if let Err(e) = check(block, &output) {
            report.push_str(&format!("!!! {e}\n"));
            failed = true;
        }
    }
    assert!(
        !failed,
        "the guide did not run as written ({status}):\n{report}"
    );
}
