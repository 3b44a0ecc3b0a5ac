//! The keys a gateway trusts: minisign public key files (`NAME.pub`, as
//! written by `gatewayctl keygen` or `minisign -G`). A bundle is accepted only
//! if one of them signed its manifest.

use std::io::Cursor;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use minisign::{PublicKey, PublicKeyBox, SignatureBox};

#[derive(Clone)]
pub struct TrustedKey {
    /// Where it came from, for messages.
    pub file: PathBuf,
    /// minisign's key id (16 upper-case hex digits), as `minisign -V` prints it.
    pub id: String,
    key: PublicKey,
}

#[derive(Clone)]
pub struct TrustedKeys(Vec<TrustedKey>);

/// minisign's way of showing a key id.
pub fn key_id(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    let n = keynum.len().min(8);
    bytes[..n].copy_from_slice(&keynum[..n]);
    format!("{:016X}", u64::from_le_bytes(bytes))
}

impl TrustedKeys {
    pub fn load(files: &[PathBuf]) -> Result<Self> {
        let mut keys = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("trusted key {}: cannot read", file.display()))?;
            let key = PublicKeyBox::from_string(&text)
                .and_then(PublicKeyBox::into_public_key)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "trusted key {}: not a minisign public key: {e}",
                        file.display()
                    )
                })?;
            keys.push(TrustedKey {
                file: file.clone(),
                id: key_id(key.keynum()),
                key,
            });
        }
        Ok(Self(keys))
    }

    /// Trusts exactly `key` (no file): `gatewayctl bundle` checks what it
    /// just wrote with the key it signed with.
    pub fn from_key(key: PublicKey) -> Self {
        Self(vec![TrustedKey {
            file: PathBuf::from("(the signing key)"),
            id: key_id(key.keynum()),
            key,
        }])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The trusted key whose signature `signature` (a minisign signature
    /// file's text) is over exactly `data`; else why not.
    pub fn verify(&self, data: &[u8], signature: &str) -> Result<&TrustedKey, String> {
        let signature = SignatureBox::from_string(signature)
            .map_err(|e| format!("the signature is not a minisign signature: {e}"))?;
        let signer = key_id(signature.keynum());
        let key =
            self.0.iter().find(|k| k.id == signer).ok_or_else(|| {
                format!("signed by key {signer}, which this gateway does not trust")
            })?;
        minisign::verify(&key.key, &signature, Cursor::new(data), true, false, false).map_err(
            |e| format!("the signature by key {signer} does not match the bundle manifest ({e})"),
        )?;
        Ok(key)
    }
}
