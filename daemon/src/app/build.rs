//! Runs an app's build commands (`[component.<id>.build]`) as `spin build` does, for
//! `gatewayctl build` and `gatewayd up --build`.
//!
//! Each command runs through `sh -c` in the manifest's folder, or in the component's
//! `workdir` under it; components build one after another, in id order, and the first
//! failure stops the build, naming the component. Output is streamed line by line with
//! the component id in front, so interleaved tools stay attributable. Before a command
//! runs, the tools it starts are looked up: a missing toolchain is reported with the
//! command that installs it, rather than as `sh: 1: cargo: not found` halfway through.
//!
//! The manifest is read raw (no `source` needs to exist yet: building makes them), but
//! it must parse, so a typo is reported before anything runs.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use super::component_ref::trigger_ids;
use super::diag::Ctx;
use super::manifest::{self, ComponentRef};

/// One component's build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    pub component: String,
    /// Shell commands, run in order.
    pub commands: Vec<String>,
    /// Absolute: the manifest's folder, or its `workdir` under it.
    pub workdir: PathBuf,
}

/// Every component's build, in id order, and the ids of components without one.
#[derive(Debug, Clone, Default)]
pub struct BuildPlan {
    pub steps: Vec<BuildStep>,
    pub unbuilt: Vec<String>,
}

/// Reads the build sections of the app at `path` (a `spin.toml` or its folder).
pub fn plan(path: &Path) -> Result<BuildPlan> {
    let file = super::ManifestFile::read(path)?;
    let ctx = &file.ctx;
    let raw = super::parse::parse(ctx, &file.text)?;

    let mut components: Vec<(String, manifest::Component)> = raw.component.into_iter().collect();
    let triggers = raw.trigger;
    components.extend(inline_components(
        ctx,
        "http",
        triggers
            .http
            .into_iter()
            .map(|t| (t.id, t.component))
            .collect(),
    )?);
    components.extend(inline_components(
        ctx,
        "redis",
        triggers
            .redis
            .into_iter()
            .map(|t| (t.id, Some(t.component)))
            .collect(),
    )?);
    components.extend(inline_components(
        ctx,
        "mqtt",
        triggers
            .mqtt
            .into_iter()
            .map(|t| (t.id, Some(t.component)))
            .collect(),
    )?);
    components.sort_by(|a, b| a.0.cmp(&b.0));
    let base = file.base_dir;

    let mut plan = BuildPlan::default();
    for (id, component) in components {
        let Some(build) = component.build else {
            plan.unbuilt.push(id);
            continue;
        };
        let place = format!("component \"{id}\": build");
        let commands = match build.command {
            manifest::Command::One(c) => vec![c],
            manifest::Command::Many(c) => c,
        };
        if commands.iter().all(|c| c.trim().is_empty()) {
            return Err(ctx.err(&place, "`command` must not be empty"));
        }
        let workdir = match &build.workdir {
            None => base.clone(),
            Some(w) if Path::new(w).is_absolute() => {
                return Err(ctx.err(
                    &place,
                    format_args!("workdir {w:?} must be relative to the manifest's folder"),
                ));
            }
            Some(w) => base.join(w),
        };
        if !workdir.is_dir() {
            return Err(ctx.err(
                &place,
                format_args!("workdir {}: no such folder", workdir.display()),
            ));
        }
        plan.steps.push(BuildStep {
            component: id,
            commands,
            workdir,
        });
    }
    Ok(plan)
}

/// The components written inline in the triggers of `kind`, with the ids the
/// loader gives them (`<trigger id>-component`).
fn inline_components(
    ctx: &Ctx,
    kind: &str,
    triggers: Vec<(Option<String>, Option<ComponentRef>)>,
) -> Result<Vec<(String, manifest::Component)>> {
    let ids = trigger_ids(
        ctx,
        kind,
        triggers.iter().map(|(id, c)| (id.as_ref(), c.as_ref())),
    )?;
    Ok(ids
        .into_iter()
        .zip(triggers)
        .filter_map(|(id, (_, component))| match component {
            Some(ComponentRef::Inline(c)) => Some((format!("{id}-component"), *c)),
            _ => None,
        })
        .collect())
}

/// Runs the plan, or only the components in `only` (ids; empty: all). Stops at the
/// first failure with an error naming the component and the command.
pub fn run(plan: &BuildPlan, only: &[String]) -> Result<()> {
    for id in only {
        if !plan.steps.iter().any(|s| &s.component == id) {
            let known: Vec<&str> = plan.steps.iter().map(|s| s.component.as_str()).collect();
            if plan.unbuilt.contains(id) {
                bail!("component \"{id}\" has no build command ([component.{id}.build])");
            }
            bail!(
                "no component \"{id}\" with a build command; those with one: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    let selected: Vec<&BuildStep> = plan
        .steps
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.component))
        .collect();
    if only.is_empty() {
        for id in &plan.unbuilt {
            println!("{id}: no build command, skipped");
        }
    }
    let runs_cargo = selected
        .iter()
        .flat_map(|s| &s.commands)
        .any(|c| programs(c).contains(&"cargo"));
    if runs_cargo {
        warn_about_target_dir();
    }
    for step in &selected {
        for command in step.commands.iter().filter(|c| !c.trim().is_empty()) {
            check_tools(&step.component, command)?;
            println!(
                "Building component {} with `{command}` (in {})",
                step.component,
                step.workdir.display()
            );
            run_one(step, command)?;
        }
    }
    if !selected.is_empty() {
        println!("Finished building {} component(s)", selected.len());
    }
    Ok(())
}

/// A `CARGO_TARGET_DIR` in the environment sends cargo's output there, away from
/// the `target/...` path a manifest's `source` names: say so before the load fails
/// with "no such file".
fn warn_about_target_dir() {
    let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") else {
        return;
    };
    eprintln!(
        "warning: CARGO_TARGET_DIR is set ({}): cargo builds there, not in the app's target/ \
         folder that spin.toml's `source` usually names; unset it for this build if the \
         component is then not found",
        Path::new(&dir).display()
    );
}

fn run_one(step: &BuildStep, command: &str) -> Result<()> {
    let id = &step.component;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(&step.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("component \"{id}\": cannot start `sh -c {command:?}`"))?;
    let stdout = child.stdout.take().map(|out| prefix_lines(id, out, false));
    let stderr = child.stderr.take().map(|err| prefix_lines(id, err, true));
    let status = child
        .wait()
        .with_context(|| format!("component \"{id}\": waiting for `{command}`"))?;
    for copier in [stdout, stderr].into_iter().flatten() {
        let _ = copier.join();
    }
    if status.success() {
        return Ok(());
    }
    let hint = if status.code() == Some(127) {
        " (the shell could not find a command: see the output above)"
    } else {
        ""
    };
    bail!("component \"{id}\": build command `{command}` failed ({status}){hint}")
}

/// Copies a child's output to ours, each line as `[id] line`.
fn prefix_lines(
    id: &str,
    from: impl Read + Send + 'static,
    to_stderr: bool,
) -> std::thread::JoinHandle<()> {
    let prefix = format!("[{id}] ");
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        while let Ok(n) = reader.read_until(b'\n', &mut line) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            // A closed terminal is no reason to kill the build.
            let _ = if to_stderr {
                writeln!(std::io::stderr().lock(), "{prefix}{text}")
            } else {
                writeln!(std::io::stdout().lock(), "{prefix}{text}")
            };
            line.clear();
        }
    })
}

/// Tools build commands commonly start, with how to install each.
const TOOLS: &[(&str, &str)] = &[
    (
        "cargo",
        "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`",
    ),
    (
        "componentize-py",
        "install it with `pip install componentize-py` (and Spin's Python SDK: `pip install spin-sdk`)",
    ),
    (
        "python3",
        "install Python 3 (Debian: `apt-get install python3 python3-pip`)",
    ),
    (
        "node",
        "install Node.js (Debian: `apt-get install nodejs npm`)",
    ),
    (
        "npm",
        "install Node.js and npm (Debian: `apt-get install nodejs npm`)",
    ),
    (
        "npx",
        "install Node.js and npm (Debian: `apt-get install nodejs npm`)",
    ),
    (
        "tinygo",
        "install TinyGo (https://tinygo.org/getting-started/install/)",
    ),
    (
        "wasm-tools",
        "install it with `cargo install --locked wasm-tools`",
    ),
];

/// Fails, with the install command, if `command` starts a known tool that is not on
/// PATH, or builds Rust for wasm32-wasip2 without that target installed.
fn check_tools(id: &str, command: &str) -> Result<()> {
    check_tools_with(
        id,
        command,
        |tool| find_on_path(tool).is_some(),
        has_wasip2_target,
    )
}

fn check_tools_with(
    id: &str,
    command: &str,
    on_path: impl Fn(&str) -> bool,
    has_wasip2: impl Fn() -> bool,
) -> Result<()> {
    for program in programs(command) {
        let Some((tool, install)) = TOOLS.iter().find(|(t, _)| *t == program) else {
            continue;
        };
        if !on_path(tool) {
            bail!(
                "component \"{id}\": the build command `{command}` needs `{tool}`, which is not \
                 on PATH; {install}"
            );
        }
        if *tool == "cargo" && command.contains("wasm32-wasip2") && !has_wasip2() {
            bail!(
                "component \"{id}\": the build command `{command}` builds for wasm32-wasip2, \
                 whose Rust target is not installed; install it with `rustup target add wasm32-wasip2`"
            );
        }
    }
    Ok(())
}

/// The programs a shell command line starts: its first word and the first word after
/// each `&&`, `||`, `;` and `|`, past `NAME=value` assignments. A heuristic for the
/// usual one-liners, not a shell parser; anything it misses still fails in the shell.
fn programs(command: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut at_start = true;
    for word in command.split_whitespace() {
        if matches!(word, "&&" | "||" | ";" | "|") {
            at_start = true;
            continue;
        }
        if at_start {
            if word.contains('=') && !word.starts_with('=') {
                continue;
            }
            found.push(word.trim_end_matches(';'));
            at_start = word.ends_with(';');
        } else if word.ends_with(';') {
            at_start = true;
        }
    }
    found
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// True unless rustup is there and says the target is missing (without rustup, a
/// distribution's Rust may still have it: let cargo decide).
fn has_wasip2_target() -> bool {
    if find_on_path("rustup").is_none() {
        return true;
    }
    match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "wasm32-wasip2"),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(manifest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
        dir
    }

    const HEAD: &str = "spin_manifest_version = 2\n[application]\nname = \"a\"\n";

    #[test]
    fn plans_named_and_inline_components_without_their_sources() {
        let dir = app(&format!(
            "{HEAD}[[trigger.http]]\nroute = \"/a\"\ncomponent = \"web\"\n\
             [[trigger.redis]]\nid = \"jobs\"\nchannel = \"c\"\naddress = \"redis://x\"\n\
             component = {{ source = \"j.wasm\", build = {{ command = [\"echo one\", \"echo two\"] }} }}\n\
             [component.web]\nsource = \"missing.wasm\"\n\
             [component.web.build]\ncommand = \"cargo build\"\nworkdir = \"sub\"\n\
             [component.plain]\nsource = \"p.wasm\"\n"
        ));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let plan = plan(dir.path()).unwrap();
        let base = dir.path().canonicalize().unwrap();
        assert_eq!(
            plan.steps,
            vec![
                BuildStep {
                    component: "jobs-component".into(),
                    commands: vec!["echo one".into(), "echo two".into()],
                    workdir: base.clone(),
                },
                BuildStep {
                    component: "web".into(),
                    commands: vec!["cargo build".into()],
                    workdir: base.join("sub"),
                },
            ]
        );
        assert_eq!(plan.unbuilt, vec!["plain".to_string()]);
    }

    #[test]
    fn bad_build_sections_are_errors_naming_the_component() {
        let dir = app(&format!(
            "{HEAD}[component.web]\nsource = \"w.wasm\"\n[component.web.build]\ncommand = \"make\"\nworkdir = \"nope\"\n"
        ));
        let e = plan(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("component \"web\": build: workdir") && e.contains("no such folder"),
            "{e}"
        );
        let dir = app(&format!(
            "{HEAD}[component.web]\nsource = \"w.wasm\"\n[component.web.build]\ncomand = \"make\"\n"
        ));
        let e = format!("{:#}", plan(dir.path()).unwrap_err());
        assert!(e.contains("comand"), "{e}");
    }

    #[test]
    fn runs_in_order_and_stops_at_the_first_failure() {
        let dir = app(&format!(
            "{HEAD}[component.a]\nsource = \"a.wasm\"\n\
             [component.a.build]\ncommand = [\"echo built > a.out\", \"exit 3\", \"touch never\"]\n\
             [component.b]\nsource = \"b.wasm\"\n[component.b.build]\ncommand = \"touch b.out\"\n"
        ));
        let plan = plan(dir.path()).unwrap();
        let e = run(&plan, &[]).unwrap_err().to_string();
        assert!(
            e.contains("component \"a\": build command `exit 3` failed"),
            "{e}"
        );
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(dir.path().join("a.out").exists());
        assert!(!dir.path().join("never").exists());
        assert!(!dir.path().join("b.out").exists(), "b ran after a failed");

        run(&plan, &["b".into()]).unwrap();
        assert!(dir.path().join("b.out").exists());
        let e = run(&plan, &["c".into()]).unwrap_err().to_string();
        assert!(
            e.contains("no component \"c\"") && e.contains("a, b"),
            "{e}"
        );
    }

    #[test]
    fn finds_the_programs_a_command_starts() {
        assert_eq!(
            programs("cargo build --release --target wasm32-wasip2"),
            ["cargo"]
        );
        assert_eq!(
            programs("RUSTFLAGS=-g cargo build && wasm-tools strip x; npm run build | tee log"),
            ["cargo", "wasm-tools", "npm", "tee"]
        );
        assert_eq!(
            programs("cd sub; componentize-py -w w componentize app"),
            ["cd", "componentize-py"]
        );
    }

    #[test]
    fn a_missing_toolchain_is_reported_with_its_install_command() {
        let check = |command: &str, installed: &[&str], wasip2: bool| {
            check_tools_with("c", command, |t| installed.contains(&t), || wasip2)
                .map_err(|e| e.to_string())
        };
        let e = check("componentize-py -w w componentize app", &["cargo"], true).unwrap_err();
        assert!(
            e.contains("component \"c\"") && e.contains("needs `componentize-py`"),
            "{e}"
        );
        assert!(e.contains("pip install componentize-py"), "{e}");
        let cargo = "cargo build --release --target wasm32-wasip2";
        let e = check(cargo, &[], true).unwrap_err();
        assert!(e.contains("https://rustup.rs"), "{e}");
        let e = check(cargo, &["cargo"], false).unwrap_err();
        assert!(e.contains("rustup target add wasm32-wasip2"), "{e}");
        assert!(check(cargo, &["cargo"], true).is_ok());
        // Programs it knows nothing about are left to the shell.
        assert!(check("make wasm", &[], false).is_ok());
    }
}
