//! A `gatewayd serve` service in a temporary folder, driven with
//! `gatewayctl` as an operator would: keys, bundles, pushes, status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Gateway, Program, examples};

/// A service folder: config, state dir, admin socket, a trusted key pair
/// `release.{key,pub}` and an untrusted one `other.{key,pub}`.
pub struct Service {
    dir: tempfile::TempDir,
}

impl Service {
    pub fn new() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("state")).unwrap();
        std::fs::set_permissions(
            d.join("state"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        for key in ["release", "other"] {
            ok(&ctl(d, &["keygen", "-o", key]));
        }
        std::fs::write(
            d.join("gatewayd.toml"),
            format!(
                "listen = \"127.0.0.1:0\"\nstate_dir = \"{0}/state\"\ntrusted_keys = [\"{0}/release.pub\"]\n\
                 [admin]\nsocket = \"{0}/admin.sock\"\n",
                d.display()
            ),
        )
        .unwrap();
        Service { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds `tables` (TOML) to the service's config; takes effect at start.
    pub fn append_config(&self, tables: &str) {
        let path = self.path().join("gatewayd.toml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(tables);
        std::fs::write(path, config).unwrap();
    }

    pub fn start(&self) -> Gateway {
        self.start_with(&[])
    }

    pub fn start_with(&self, env: &[(&str, &str)]) -> Gateway {
        self.start_program(&Program::default(), env)
    }

    /// Starts the service with `program` (e.g. a board build under QEMU).
    pub fn start_program(&self, program: &Program, env: &[(&str, &str)]) -> Gateway {
        Gateway::serve_with(program, &self.path().join("gatewayd.toml"), env)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `hello-<version>.bundle`, signed by `key`.
    pub fn bundle(&self, version: &str, key: &str) -> PathBuf {
        self.bundle_with(version, key, &[])
    }

    /// [`Service::bundle`] with more `gatewayctl bundle` arguments.
    pub fn bundle_with(&self, version: &str, key: &str, extra: &[&str]) -> PathBuf {
        self.bundle_app(&examples().join("hello"), version, key, extra)
    }

    /// The app in folder `app` as `<folder>-<version>-<key>.bundle`, signed by
    /// `key`, with more `gatewayctl bundle` arguments.
    pub fn bundle_app(&self, app: &Path, version: &str, key: &str, extra: &[&str]) -> PathBuf {
        let folder = app.file_name().unwrap().to_string_lossy();
        let name = format!("{folder}-{version}-{key}.bundle");
        let key = format!("{key}.key");
        let mut args = vec![
            "bundle",
            app.to_str().unwrap(),
            "--key",
            &key,
            "--version",
            version,
            "-o",
            &name,
        ];
        args.extend_from_slice(extra);
        ok(&ctl(self.path(), &args));
        self.path().join(name)
    }

    pub fn to(&self) -> String {
        format!("unix://{}", self.path().join("admin.sock").display())
    }

    pub fn push(&self, bundle: &Path) -> Output {
        ctl(
            self.path(),
            &[
                "push",
                "bundle",
                bundle.to_str().unwrap(),
                "--to",
                &self.to(),
            ],
        )
    }

    /// [`Service::push`] of a bundle that replaces the running app by
    /// another (`--replace-app`).
    pub fn push_replacing(&self, bundle: &Path) -> Output {
        ctl(
            self.path(),
            &[
                "push",
                "bundle",
                bundle.to_str().unwrap(),
                "--replace-app",
                "--to",
                &self.to(),
            ],
        )
    }

    pub fn status(&self) -> serde_json::Value {
        let out = ok(&ctl(self.path(), &["status", "--to", &self.to(), "--json"]));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

pub fn ctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(super::gatewayctl())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running gatewayctl")
}

pub fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

pub fn rejected(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).to_string()
}
