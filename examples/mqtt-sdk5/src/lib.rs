//! `mqtt_sdk5`: publishes through Spin's outbound MQTT with the Spin Rust SDK 5,
//! whose `#[http_component]` builds a WASI 0.2 component that imports
//! `fermyon:spin/mqtt@2.0.0`. Same contract as `mqtt_sdk7`:
//! `POST publish/<qos>/<topic>` (qos 0, 1 or 2; the topic is the percent-decoded
//! rest and may contain `/`; the body is the payload) answers 200 `ok`. The broker
//! comes from the `x-mqtt-address` header (missing = 400), credentials from
//! `x-mqtt-username`/`x-mqtt-password` (empty if absent), keep-alive 30 s. The
//! path is `spin-path-info` if non-empty, else the URI path. An MQTT error from
//! opening or publishing answers 502 `error=<Debug>`.
//! `examples/mqtt/spin.toml` routes `/v5/...`.

use guest_util::{percent_decode_utf8, route_path};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::mqtt::{Connection, Error, Qos};

#[http_component]
fn handle(request: Request) -> Response {
    let path = route_path(
        request
            .header("spin-path-info")
            .and_then(|value| value.as_str()),
        request.path(),
    );
    let header = |name: &str| request.header(name).and_then(|value| value.as_str());
    let (status, body) = match parse(matches!(request.method(), Method::Post), path) {
        Err(failure) => failure,
        Ok((qos, topic)) => match header("x-mqtt-address") {
            None => (400, "missing x-mqtt-address".to_string()),
            Some(address) => publish(
                address,
                header("x-mqtt-username").unwrap_or(""),
                header("x-mqtt-password").unwrap_or(""),
                &topic,
                request.body().to_vec(),
                qos,
            )
            .map(|()| (200, "ok".to_string()))
            .unwrap_or_else(|error| (502, format!("error={error:?}"))),
        },
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body)
        .build()
}

fn publish(
    address: &str,
    username: &str,
    password: &str,
    topic: &str,
    payload: Vec<u8>,
    qos: Qos,
) -> Result<(), Error> {
    let conn = Connection::open(address, username, password, 30)?;
    conn.publish(topic, &payload, qos)
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
