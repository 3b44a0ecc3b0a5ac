//! A signed bundle as an OCI artifact, through oci-client: published by
//! `gatewayctl push bundle --to oci://...`, followed by `[fleet] source`.
//!
//! The artifact is an OCI image manifest with `artifactType`
//! [`ARTIFACT_TYPE`], the empty config, and one layer of type
//! [`LAYER_MEDIA_TYPE`]: the bundle file, byte for byte. The registry is a
//! carrier, never an authority: what a gateway pulls goes through the same
//! checks as a push (signature before unpacking, version rules, health
//! check), so any registry will do and none needs to be trusted.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::StreamExt as _;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::reference::OciReference;

/// `artifactType` of a gatewayd bundle.
pub const ARTIFACT_TYPE: &str = "application/vnd.gatewayd.bundle.v1";
/// The layer: the bundle file (gzip-compressed tar, see `update::bundle`).
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.gatewayd.bundle.v1.tar+gzip";
/// The OCI 1.1 empty config, for artifacts that need none.
const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
/// Upload pieces: oci-client sends one request per piece.
const PUSH_PIECE: u64 = 4 << 20;

/// One repository tag at one registry, with the credentials for it.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    reference: Reference,
    shown: OciReference,
}

/// Credentials for a registry: none, or a user name and password (a token
/// counts as a password for registries that take one).
pub fn auth(username: &str, password: &str) -> RegistryAuth {
    if username.is_empty() {
        RegistryAuth::Anonymous
    } else {
        RegistryAuth::Basic(username.to_string(), password.to_string())
    }
}

impl Registry {
    /// `insecure` speaks plain HTTP to the registry (a lab registry).
    pub fn new(reference: &OciReference, insecure: bool, auth: RegistryAuth) -> Result<Self> {
        // reqwest (under oci-client) needs a process-wide TLS provider even
        // for plain HTTP; gatewayd's own TLS passes ring explicitly, so
        // installing it here changes nothing else. Err: already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: if insecure {
                ClientProtocol::HttpsExcept(vec![reference.registry.clone()])
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            // An image index is not a bundle: refuse it rather than pick.
            platform_resolver: None,
            ..Default::default()
        };
        let client = Client::try_from(config).context("the registry client")?;
        Ok(Registry {
            client,
            auth,
            reference: Reference::with_tag(
                reference.registry.clone(),
                reference.repository.clone(),
                reference.tag.clone(),
            ),
            shown: reference.clone(),
        })
    }

    /// Publishes the bundle at `path` under the tag; returns the
    /// artifact's manifest digest. Streams the file (bundles may be large).
    pub async fn push_bundle(&self, path: &Path) -> Result<String> {
        let shown = &self.shown;
        let (digest, size) = {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || sha256_file(&path)).await??
        };
        self.authorize_push(&self.reference).await?;
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("{}: cannot open", path.display()))?;
        let pieces = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut piece = Vec::with_capacity(PUSH_PIECE as usize);
            (&mut file)
                .take(PUSH_PIECE)
                .read_to_end(&mut piece)
                .await
                .map_err(oci_client::errors::OciDistributionError::from)?;
            Ok((!piece.is_empty()).then(|| (bytes::Bytes::from(piece), file)))
        });
        self.client
            .push_blob_stream(&self.reference, pieces, &digest, Some(size))
            .await
            .map_err(|e| anyhow!("{shown}: uploading the bundle: {e}"))?;
        let config_digest = format!("sha256:{:x}", sha2::Sha256::digest(EMPTY_CONFIG));
        self.client
            .push_blob(&self.reference, EMPTY_CONFIG.to_vec(), &config_digest)
            .await
            .map_err(|e| anyhow!("{shown}: uploading the config: {e}"))?;
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
            artifact_type: Some(ARTIFACT_TYPE.to_string()),
            config: OciDescriptor {
                media_type: EMPTY_CONFIG_MEDIA_TYPE.to_string(),
                digest: config_digest,
                size: EMPTY_CONFIG.len() as i64,
                ..Default::default()
            },
            layers: vec![OciDescriptor {
                media_type: LAYER_MEDIA_TYPE.to_string(),
                digest,
                size: size as i64,
                ..Default::default()
            }],
            subject: None,
            annotations: None,
        };
        let url = self
            .client
            .push_manifest(&self.reference, &OciManifest::Image(manifest))
            .await
            .map_err(|e| anyhow!("{shown}: publishing the manifest: {e}"))?;
        // The registry answers with the manifest's URL, which ends in its digest.
        Ok(url.rsplit('/').next().unwrap_or(&url).to_string())
    }

    /// Points tag `tag` of the same repository at artifact `digest` (the
    /// manifest is copied as is; its blobs are already there).
    pub async fn retag(&self, digest: &str, tag: &str) -> Result<()> {
        let shown = &self.shown;
        let pinned = self.reference.clone_with_digest(digest.to_string());
        let (body, _) = self
            .client
            .pull_manifest_raw(&pinned, &self.auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
            .map_err(|e| anyhow!("{shown}: the manifest of {digest}: {e}"))?;
        let target = Reference::with_tag(
            self.shown.registry.clone(),
            self.shown.repository.clone(),
            tag.to_string(),
        );
        self.authorize_push(&target).await?;
        self.client
            .push_manifest_raw(
                &target,
                body,
                http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
            )
            .await
            .map_err(|e| anyhow!("{}: {e}", self.shown.with_tag(tag)))?;
        Ok(())
    }

    /// Gets push rights before a push: a token registry hands out one per
    /// operation; a password registry takes the password with each request.
    async fn authorize_push(&self, target: &Reference) -> Result<()> {
        self.client
            .store_auth_if_needed(target.resolve_registry(), &self.auth)
            .await;
        self.client
            .auth(target, &self.auth, oci_client::RegistryOperation::Push)
            .await
            .map(drop)
            .map_err(|e| anyhow!("{}: {e}", self.shown))
    }

    /// The digest the tag points at now: one HEAD request.
    pub async fn tag_digest(&self) -> Result<String> {
        self.client
            .fetch_manifest_digest(&self.reference, &self.auth)
            .await
            .map_err(|e| anyhow!("{}: {e}", self.shown))
    }

    /// Downloads the bundle of artifact `digest` into `dest`, refusing
    /// anything but a gatewayd bundle and a bundle larger than `max_size`
    /// before the download starts. The registry's bytes are checked against
    /// the layer digest; `dest` appears only when complete. A download cut
    /// short leaves `dest` + `.part`, from which the next call carries on.
    pub async fn pull_bundle(&self, digest: &str, max_size: u64, dest: &Path) -> Result<u64, Pull> {
        let shown = &self.shown;
        let pinned = self.reference.clone_with_digest(digest.to_string());
        let (manifest, _) = self
            .client
            .pull_image_manifest(&pinned, &self.auth)
            .await
            .map_err(|e| Pull::Unreachable(anyhow!("{shown}: the manifest of {digest}: {e}")))?;
        let layer = bundle_layer(&manifest)
            .map_err(|e| Pull::NotABundle(anyhow!("{shown}: {digest}: {e}")))?;
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > max_size {
            return Err(Pull::NotABundle(anyhow!(
                "{shown}: {digest}: the bundle is {size} bytes, more than max_bundle_size \
                 ({max_size} bytes): not downloaded"
            )));
        }
        let partial = dest.with_extension("part");
        let fetched = self.fetch(&pinned, layer, size, &partial).await;
        match fetched {
            Ok(()) => {
                tokio::fs::rename(&partial, dest)
                    .await
                    .map_err(|e| Pull::Unreachable(anyhow!("{}: {e}", dest.display())))?;
                Ok(size)
            }
            Err(Fetch::Interrupted(e)) => Err(Pull::Unreachable(anyhow!(
                "{shown}: downloading {digest}: {e:#} (resumed at the next try)"
            ))),
            Err(Fetch::Corrupt(e)) => {
                let _ = std::fs::remove_file(&partial);
                Err(Pull::Unreachable(anyhow!(
                    "{shown}: downloading {digest}: {e:#}"
                )))
            }
        }
    }

    /// Downloads the layer into `partial`, carrying on from what an earlier,
    /// interrupted try left there (a `Range` request), and checks the whole
    /// against the layer's digest.
    async fn fetch(
        &self,
        pinned: &Reference,
        layer: &OciDescriptor,
        size: u64,
        partial: &Path,
    ) -> Result<(), Fetch> {
        let interrupted = |e: anyhow::Error| Fetch::Interrupted(e);
        let have = std::fs::metadata(partial).map_or(0, |m| m.len());
        let (mut stream, resumed) = if have > 0 && have < size {
            match self
                .client
                .pull_blob_stream_partial(pinned, layer, have, None)
                .await
                .map_err(|e| interrupted(e.into()))?
            {
                BlobResponse::Partial(stream) => (stream, true),
                // The registry ignored the range: the whole blob again.
                BlobResponse::Full(stream) => (stream, false),
            }
        } else {
            let stream = self
                .client
                .pull_blob_stream(pinned, layer)
                .await
                .map_err(|e| interrupted(e.into()))?;
            (stream, false)
        };
        if resumed {
            tracing::info!("fleet: resuming the download at byte {have} of {size}");
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(partial)
            .await
            .map_err(|e| interrupted(e.into()))?;
        let mut written = if resumed { have } else { 0 };
        while let Some(piece) = stream.next().await {
            // A whole blob's stream checks the digest itself and ends with
            // an error on a mismatch.
            let piece = piece.map_err(|e| {
                let wrong_digest = e
                    .get_ref()
                    .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>());
                if wrong_digest {
                    Fetch::Corrupt(e.into())
                } else {
                    interrupted(e.into())
                }
            })?;
            written += piece.len() as u64;
            if written > size {
                return Err(Fetch::Corrupt(anyhow!(
                    "the registry sent more than the {size} bytes the manifest says"
                )));
            }
            file.write_all(&piece)
                .await
                .map_err(|e| interrupted(e.into()))?;
        }
        if written != size {
            return Err(interrupted(anyhow!(
                "the registry sent {written} of {size} bytes"
            )));
        }
        file.sync_all().await.map_err(|e| interrupted(e.into()))?;
        if resumed {
            // A range is not checked by the client: check the whole file.
            let path = partial.to_path_buf();
            let (digest, _) = tokio::task::spawn_blocking(move || sha256_file(&path))
                .await
                .map_err(|e| interrupted(e.into()))?
                .map_err(interrupted)?;
            if digest != layer.digest {
                return Err(Fetch::Corrupt(anyhow!(
                    "the resumed download's digest is {digest}, not {}",
                    layer.digest
                )));
            }
        }
        Ok(())
    }
}

/// Why a download stopped.
enum Fetch {
    /// Cut short: what arrived stays, for the next try to carry on from.
    Interrupted(anyhow::Error),
    /// Wrong bytes: what arrived is thrown away.
    Corrupt(anyhow::Error),
}

/// Why a pull failed.
#[derive(Debug)]
pub enum Pull {
    /// The registry or the network failed: try again later.
    Unreachable(anyhow::Error),
    /// The artifact is not a bundle this gateway takes: not until the tag moves.
    NotABundle(anyhow::Error),
}

impl std::fmt::Display for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pull::Unreachable(e) | Pull::NotABundle(e) => write!(f, "{e:#}"),
        }
    }
}

/// The one bundle layer of a gatewayd artifact.
fn bundle_layer(manifest: &OciImageManifest) -> Result<&OciDescriptor> {
    if manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        bail!(
            "not a gatewayd bundle (artifactType {:?}, expected {ARTIFACT_TYPE:?}; publish with \
             gatewayctl push bundle --to oci://...)",
            manifest.artifact_type.as_deref().unwrap_or("none")
        );
    }
    let [layer] = manifest.layers.as_slice() else {
        bail!("{} layers, expected one", manifest.layers.len());
    };
    if layer.media_type != LAYER_MEDIA_TYPE {
        bail!(
            "layer type {:?}, expected {LAYER_MEDIA_TYPE:?}",
            layer.media_type
        );
    }
    // Blobs elsewhere would be fetched from wherever the manifest points.
    if layer.urls.as_ref().is_some_and(|u| !u.is_empty()) {
        bail!("the layer names external URLs, which gatewayd does not follow");
    }
    Ok(layer)
}

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    use std::io::Read as _;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut hash = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{:x}", hash.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(artifact_type: &str, layers: &[(&str, Option<Vec<String>>)]) -> OciImageManifest {
        OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
            artifact_type: Some(artifact_type.into()),
            config: OciDescriptor::default(),
            layers: layers
                .iter()
                .map(|(media_type, urls)| OciDescriptor {
                    media_type: media_type.to_string(),
                    urls: urls.clone(),
                    ..Default::default()
                })
                .collect(),
            subject: None,
            annotations: None,
        }
    }

    #[test]
    fn only_a_gatewayd_bundle_artifact_is_taken() {
        assert!(bundle_layer(&manifest(ARTIFACT_TYPE, &[(LAYER_MEDIA_TYPE, None)])).is_ok());
        for (m, why) in [
            (
                manifest("application/vnd.oci.image.config.v1+json", &[]),
                "not a gatewayd bundle",
            ),
            (manifest(ARTIFACT_TYPE, &[]), "0 layers"),
            (
                manifest(ARTIFACT_TYPE, &[("application/wasm", None)]),
                "layer type \"application/wasm\"",
            ),
            (
                manifest(
                    ARTIFACT_TYPE,
                    &[(LAYER_MEDIA_TYPE, Some(vec!["https://elsewhere/b".into()]))],
                ),
                "external URLs",
            ),
        ] {
            let error = bundle_layer(&m).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
    }
}
