//! `gatewayctl push bundle FILE --to oci://HOST[:PORT]/REPO:TAG`: publishes
//! a signed bundle as an OCI artifact (see gatewayd's `fleet::registry`) for
//! the gateways that follow the tag (`[fleet] source`). The bundle is
//! checked to be a readable bundle first; the signature inside is what the
//! gateways check, so the registry needs no trust.
//!
//! Credentials: `--username` with `--password-stdin`, else the docker
//! `config.json` entry for the registry (`docker login`), else none.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use gatewayd::fleet::reference::OciReference;
use gatewayd::fleet::registry::{Registry, auth};
use gatewayd::update::bundle::{BundleManifest, Limits, MANIFEST};
use oci_client::secrets::RegistryAuth;

#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// For oci:// addresses: speak plain HTTP to the registry (a lab
    /// registry without TLS).
    #[arg(long)]
    pub insecure: bool,
    /// For oci:// addresses: the registry user name (the password is read
    /// from standard input with --password-stdin); without it, the docker
    /// config.json credentials for the registry are used, if any.
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the registry password (or token) from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

pub fn run(file: &Path, to: &str, registry: &RegistryArgs, json: bool) -> Result<()> {
    let reference = OciReference::parse(to).map_err(|e| anyhow!("--to {to:?}: {e}"))?;
    // Only a bundle gatewayctl can read goes out: a wrong file is caught here
    // rather than by every gateway of the fleet.
    let manifest = bundle_manifest(file)
        .with_context(|| format!("{}: not a gatewayd bundle", file.display()))?;
    let credentials = credentials(&reference, registry)?;
    let registry_client = Registry::new(&reference, registry.insecure, credentials)?;
    let digest = crate::admin_client::block_on(registry_client.push_bundle(file))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true,
                "to": reference.to_string(),
                "digest": digest,
                "app": manifest.app,
                "version": manifest.version,
            })
        );
    } else {
        println!(
            "published: app \"{}\" version {} as {reference} ({digest}); gateways following \
             the tag apply it at their next poll",
            manifest.app, manifest.version
        );
    }
    Ok(())
}

/// The bundle's manifest, its first entry, unverified: only for saying what
/// was published (`gatewayctl verify` checks the signature).
fn bundle_manifest(file: &Path) -> Result<BundleManifest> {
    let limits = Limits::default();
    let opened =
        std::fs::File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(opened));
    let entry = archive
        .entries()?
        .next()
        .ok_or_else(|| anyhow!("an empty archive"))??;
    if entry.path()?.as_os_str() != MANIFEST {
        return Err(anyhow!("its first entry is not {MANIFEST}"));
    }
    let mut text = String::new();
    entry
        .take(limits.max_manifest_size)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {MANIFEST}"))?;
    BundleManifest::parse(&text, &limits).map_err(|e| anyhow!("{MANIFEST}: {e}"))
}

pub fn credentials(reference: &OciReference, args: &RegistryArgs) -> Result<RegistryAuth> {
    if let Some(username) = &args.username {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .context("reading the password from standard input")?;
        return Ok(auth(username, password.trim_end_matches(['\r', '\n'])));
    }
    match docker_credential::get_credential(&reference.registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            Ok(auth(&user, &password))
        }
        Ok(docker_credential::DockerCredential::IdentityToken(_)) => Err(anyhow!(
            "the docker config has an identity token for {}, which gatewayctl cannot use: \
             pass --username and --password-stdin",
            reference.registry
        )),
        // No config, no entry for this registry: anonymous.
        Err(_) => Ok(RegistryAuth::Anonymous),
    }
}
