//! `mqtt_sdk7`: publishes through Spin's outbound MQTT with the Spin Rust SDK 7,
//! whose `#[http_service]` builds a WASI 0.3 component that imports
//! `spin:mqtt/mqtt@3.0.0` (async open and publish). Same contract as `mqtt_sdk5`:
//! `POST publish/<qos>/<topic>` (qos 0, 1 or 2; the topic is the percent-decoded
//! rest and may contain `/`; the body is the payload) answers 200 `ok`. The broker
//! comes from the `x-mqtt-address` header (missing = 400), credentials from
//! `x-mqtt-username`/`x-mqtt-password` (empty if absent), keep-alive 30 s. The
//! path is `spin-path-info` if non-empty, else the URI path. An MQTT error from
//! opening or publishing answers 502 `error=<Debug>`.
//! `examples/mqtt/spin.toml` routes `/v7/...`.

use guest_util::{percent_decode_utf8, route_path};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_service;
use spin_sdk::mqtt::{Connection, Error, Qos};

#[http_service]
async fn handle(request: Request) -> Response<String> {
    let (parts, body) = request.into_parts();
    let path = route_path(
        parts
            .headers
            .get("spin-path-info")
            .and_then(|value| value.to_str().ok()),
        parts.uri.path(),
    );
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let (status, text) = match parse(parts.method == Method::POST, path) {
        Err(failure) => failure,
        Ok((qos, topic)) => match header("x-mqtt-address") {
            None => (400, "missing x-mqtt-address".to_string()),
            Some(address) => match body.bytes().await {
                Err(error) => (400, format!("error={error:?}")),
                Ok(payload) => publish(
                    address,
                    header("x-mqtt-username").unwrap_or(""),
                    header("x-mqtt-password").unwrap_or(""),
                    &topic,
                    payload.to_vec(),
                    qos,
                )
                .await
                .map(|()| (200, "ok".to_string()))
                .unwrap_or_else(|error| (502, format!("error={error:?}"))),
            },
        },
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(text)
        // Only fails for an invalid status or header, and all of those are fixed.
        .expect("valid response parts")
}

async fn publish(
    address: &str,
    username: &str,
    password: &str,
    topic: &str,
    payload: Vec<u8>,
    qos: Qos,
) -> Result<(), Error> {
    let conn = Connection::open(address, username, password, 30).await?;
    conn.publish(topic, payload, qos).await
}

/// `/publish/<qos>/<topic>` -> (qos, decoded topic), or an error response.
fn parse(is_post: bool, path: &str) -> Result<(Qos, String), (u16, String)> {
    let rest = path
        .strip_prefix("/publish/")
        .ok_or_else(|| (404, "expected /publish/<qos>/<topic>".to_string()))?;
    if !is_post {
        return Err((405, "publish takes POST".to_string()));
    }
    let (qos, topic) = rest.split_once('/').unwrap_or((rest, ""));
    let qos = match qos {
        "0" => Qos::AtMostOnce,
        "1" => Qos::AtLeastOnce,
        "2" => Qos::ExactlyOnce,
        _ => return Err((400, format!("qos must be 0, 1 or 2, not {qos:?}"))),
    };
    let topic = percent_decode_utf8(topic)
        .ok_or_else(|| (400, "topic is not valid percent-encoded UTF-8".to_string()))?;
    if topic.is_empty() {
        return Err((400, "publish needs a topic".to_string()));
    }
    Ok((qos, topic))
}
