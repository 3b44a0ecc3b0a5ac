//! The admin API over HTTPS on TCP (`[admin] listen`), for operators who
//! cannot reach the unix socket: rustls with the configured certificate, and
//! a bearer token from `[admin] tokens` on every request. Tokens are compared
//! in constant time and never logged.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use http::Request;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::Admin;
use crate::config::AdminTcp;
use crate::shutdown::Shutdown;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TCP admin listener, bound, with its TLS settings loaded.
pub struct TcpAdmin {
    acceptor: TlsAcceptor,
    listener: TcpListener,
    tokens: Arc<Vec<String>>,
}

/// Loads the certificate and key and binds `[admin] listen`.
pub async fn bind_tcp(config: &AdminTcp) -> Result<TcpAdmin> {
    let acceptor = acceptor(config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the admin listener {}", config.listen))?;
    tracing::info!(
        "admin API on https://{} (bearer tokens)",
        listener.local_addr()?
    );
    Ok(TcpAdmin {
        acceptor,
        listener,
        tokens: Arc::new(config.tokens.clone()),
    })
}

pub async fn serve_tcp(bound: TcpAdmin, admin: Arc<Admin>, mut shutdown: Shutdown) -> Result<()> {
    let TcpAdmin {
        acceptor,
        listener,
        tokens,
    } = bound;
    loop {
        let Some(slot) = admin.slot(&mut shutdown).await else {
            break;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("admin accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.requested() => break,
        };
        let (acceptor, admin, tokens) = (acceptor.clone(), admin.clone(), tokens.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => super::serve_connection(tls, admin, Some(tokens)).await,
                Ok(Err(e)) => tracing::debug!(%peer, "admin TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "admin TLS handshake timed out"),
            }
            drop(slot);
        });
    }
    Ok(())
}

fn acceptor(config: &AdminTcp) -> Result<TlsAcceptor> {
    let certificates = CertificateDer::pem_file_iter(&config.tls_cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "admin.tls_cert {}: cannot read PEM certificates",
                config.tls_cert.display()
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(&config.tls_key).with_context(|| {
        format!(
            "admin.tls_key {}: cannot read a PEM private key",
            config.tls_key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .context("admin.tls_cert and admin.tls_key do not make a usable certificate")?;
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

/// Whether `request` carries one of `tokens` as its bearer token.
pub fn authorized<B>(request: &Request<B>, tokens: &[String]) -> bool {
    let Some(given) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    tokens.iter().fold(false, |found, token| {
        found | same(given.trim().as_bytes(), token.as_bytes())
    })
}

/// Constant-time equality (for equal lengths; lengths are not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let tokens = vec![
            "0123456789abcdef".to_string(),
            "fedcba9876543210".to_string(),
        ];
        let with = |value: &str| {
            Request::get("/")
                .header("authorization", value)
                .body(())
                .unwrap()
        };
        assert!(authorized(&with("Bearer fedcba9876543210"), &tokens));
        assert!(!authorized(&with("Bearer fedcba987654321"), &tokens));
        assert!(!authorized(&with("Basic fedcba9876543210"), &tokens));
        assert!(!authorized(&Request::get("/").body(()).unwrap(), &tokens));
    }
}
