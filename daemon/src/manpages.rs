//! Man pages written from a command's clap definition, so `man gatewayd`
//! and `man gatewayctl-push-bundle` say what `--help` says. Both binaries
//! have a hidden `manpages DIR` command that calls this; `packaging/build.sh`
//! runs it and the packages install the pages.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Writes `NAME.1` for the command and `NAME-SUB.1` for each visible
/// subcommand into `dir` (created if missing), and returns the files.
pub fn write(command: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn pages_cover_every_visible_command_and_leave_out_the_hidden_one() {
        let dir = tempfile::tempdir().unwrap();
        let pages = super::write(crate::cli::Cli::command(), dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["gatewayd-serve.1", "gatewayd-up.1", "gatewayd.1"]);
        let top = std::fs::read_to_string(&pages[2]).unwrap();
        assert!(top.contains(".TH gatewayd 1"), "{top}");
        assert!(top.contains("Runs Spin WebAssembly apps"), "{top}");
        let up = std::fs::read_to_string(&pages[1]).unwrap();
        assert!(up.contains("request\\-timeout"), "{up}");
    }
}
