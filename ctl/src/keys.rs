//! Reading a secret key: minisign's format, with or without a password (asked
//! for on the terminal, or taken from GATEWAYCTL_PASSWORD for scripts).

use std::path::Path;

use anyhow::{Context as _, Result};
use minisign::{SecretKey, SecretKeyBox};

/// Environment variable holding the secret key's password, for scripts.
pub const PASSWORD_ENV: &str = "GATEWAYCTL_PASSWORD";

fn password_from_env() -> Option<String> {
    std::env::var(PASSWORD_ENV).ok()
}

/// The password from GATEWAYCTL_PASSWORD, or `None` when minisign can ask on
/// the terminal. With neither (a script, CI, a service), an error naming the
/// variable: minisign's own would be "No such device or address".
pub fn password_or_terminal(what: &str) -> Result<Option<String>> {
    if let Some(password) = password_from_env() {
        return Ok(Some(password));
    }
    if std::fs::File::open("/dev/tty").is_err() {
        anyhow::bail!(
            "{what} needs a password and there is no terminal to ask on: \
             set {PASSWORD_ENV} to the password"
        );
    }
    Ok(None)
}

pub fn load_secret(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("secret key {}: cannot read", path.display()))?;
    let boxed = SecretKeyBox::from_string(&text)
        .with_context(|| format!("secret key {}: not a minisign secret key", path.display()))?;
    // An unencrypted key opens without a password; otherwise ask.
    if let Ok(key) = SecretKey::from_unencrypted_box(boxed.clone()) {
        return Ok(key);
    }
    if let Some(key) = unencrypted_without_checksum(&text) {
        return Ok(key);
    }
    let password = password_or_terminal(&format!("secret key {}", path.display()))?;
    SecretKey::from_box(boxed, password)
        .map_err(|e| anyhow::anyhow!("secret key {}: {e}", path.display()))
}

/// `minisign -G -W` writes an unencrypted key with an all-zero checksum,
/// which the minisign crate refuses as corrupted; such a key is still good.
fn unencrypted_without_checksum(text: &str) -> Option<SecretKey> {
    use ct_codecs::{Base64, Decoder as _};
    let encoded = text.lines().nth(1)?.trim();
    let bytes = Base64::decode_to_vec(encoded, None).ok()?;
    let key = SecretKey::from_bytes(&bytes).ok()?;
    (!key.is_encrypted()).then_some(key)
}
