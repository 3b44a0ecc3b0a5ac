//! Entry points for fuzzing: each hands arbitrary bytes to one parser of
//! outside input, the way the daemon does, and must return whatever the bytes
//! are (an error is a fine outcome; a panic, a hang or a huge allocation is a
//! bug). `fuzz/` drives them with cargo-fuzz; the e2e test `fuzz_corpus`
//! replays the committed corpus through them on every CI run, so a crash once
//! found stays fixed.

use std::path::Path;
use std::sync::OnceLock;

use crate::app::{HttpHandler, HttpTrigger, Route};
use crate::trigger::http::path;
use crate::trigger::http::router::Router;
use crate::update::bundle::Limits;
use crate::update::keys::TrustedKeys;

/// One entry point: bytes in, nothing out.
pub type Target = fn(&[u8]);

/// The targets, by the name of their corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("config", config),
    ("bundle", bundle),
    ("route", route),
    ("allowed_hosts", allowed_hosts),
];

/// A `spin.toml`, loaded as `gatewayd up` loads one (its component files do
/// not exist, so a manifest that parses ends at that check).
pub fn manifest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::app::load_str("spin.toml", text, Path::new("/nonexistent/fuzz"));
    }
}

/// A `gatewayd.toml`.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Config::parse(text, Path::new("gatewayd.toml"));
    }
}

/// A pushed bundle, verified against a key that signed nothing in it.
pub fn bundle(data: &[u8]) {
    static KEYS: OnceLock<TrustedKeys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let pair =
            minisign::KeyPair::generate_unencrypted_keypair().expect("generating a key pair");
        TrustedKeys::from_key(pair.pk)
    });
    let _ = crate::update::reader::verify_bytes(data, keys, &Limits::default());
}

/// Routes and a request path: the first line holds routes separated by
/// spaces (each becomes a trigger), the rest is the path, normalized and
/// routed as a request's.
pub fn route(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (routes, request_path) = text.split_once('\n').unwrap_or((text, "/"));
    let triggers: Vec<HttpTrigger> = routes
        .split(' ')
        .enumerate()
        .filter_map(|(i, raw)| {
            let route = Route::parse(raw).ok()?;
            Some(HttpTrigger {
                id: format!("c{i}"),
                route,
                handler: HttpHandler::Component(format!("c{i}")),
            })
        })
        .collect();
    let router = Router::new("/", &triggers);
    if let Ok(normal) = path::normalize(request_path) {
        let _ = router.route(&normal);
    }
}

/// One `allowed_outbound_hosts` entry per line, then each checked against
/// a few addresses.
pub fn allowed_hosts(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries: Vec<String> = text.lines().map(str::to_string).collect();
    if let Ok(allowed) = crate::host::allowed_hosts::AllowedHosts::parse(&entries) {
        for (scheme, host, port) in [
            ("https", "example.com", Some(443)),
            ("mqtt", "127.0.0.1", Some(1883)),
            ("redis", "localhost", None),
        ] {
            let _ = allowed.allows(scheme, host, port);
        }
        let _ = allowed.allows_self();
    }
}
