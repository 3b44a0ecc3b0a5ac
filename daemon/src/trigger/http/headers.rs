//! The request headers Spin sets for a component, so code written for Spin
//! finds the same information here.
//!
//! Incoming `spin-*` headers are removed first: a client must not be able to
//! forge what the gateway tells the component about the route or the peer.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::router::RouteMatch;

pub fn set_spin_headers(
    headers: &mut HeaderMap,
    uri: &Uri,
    route: &RouteMatch<'_>,
    client: SocketAddr,
    listen: SocketAddr,
) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }

    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let full_url = match headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(host) => format!("http://{host}{path_and_query}"),
        None => format!("http://{listen}{path_and_query}"),
    };

    // The fixed names are static: a custom header name made from bytes is an
    // allocation.
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    let client = client.to_string();
    for (name, value) in [
        ("spin-full-url", full_url.as_str()),
        ("spin-path-info", &route.path_info),
        ("spin-matched-route", &route.matched_route),
        ("spin-raw-component-route", &route.raw_component_route),
        ("spin-component-route", &route.component_route),
        ("spin-base-path", &route.base_path),
        ("spin-client-addr", &client),
    ] {
        set(HeaderName::from_static(name), value);
    }
    for (name, value) in &route.params {
        let name = format!("spin-path-match-{}", name.to_ascii_lowercase());
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            set(name, value);
        }
    }
}
