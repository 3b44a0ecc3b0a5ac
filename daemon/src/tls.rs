//! TLS client settings for broker connections (`mqtts://`), and the MQTT
//! client built on them: which certificate
//! authorities the gateway trusts. The public web roots are built in (boards
//! often lack an up-to-date system store); `--tls-ca-file` adds a private CA,
//! as edge brokers often use one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// A client configuration trusting the public roots and every certificate in
/// `ca_files` (PEM).
pub fn client_config(ca_files: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for file in ca_files {
        let certificates = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| {
                format!(
                    "--tls-ca-file {}: cannot read PEM certificates",
                    file.display()
                )
            })?;
        anyhow::ensure!(
            !certificates.is_empty(),
            "--tls-ca-file {}: holds no certificate",
            file.display()
        );
        for certificate in certificates {
            roots.add(certificate).with_context(|| {
                format!(
                    "--tls-ca-file {}: not a usable CA certificate",
                    file.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A rumqttc client for an `mqtt://` or `mqtts://` address (`scheme`), the
/// one way gatewayd opens broker connections (outbound MQTT and the trigger).
pub fn mqtt_client(
    mut options: rumqttc::MqttOptions,
    scheme: &str,
    config: &Arc<rustls::ClientConfig>,
    queue: usize,
) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    options.set_transport(if scheme == "mqtts" {
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(config.clone()))
    } else {
        rumqttc::Transport::tcp()
    });
    let (client, mut events) = rumqttc::AsyncClient::new(options, queue);
    // Small packets answered at once (a publish, then its ack; a message,
    // then its reply): without NODELAY, Nagle holds them for the peer's
    // delayed ACK, some 40 ms each time.
    let mut network = events.network_options();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    (client, events)
}

/// The port an MQTT address means when it names none.
pub fn mqtt_default_port(scheme: &str) -> u16 {
    if scheme == "mqtts" { 8883 } else { 1883 }
}
