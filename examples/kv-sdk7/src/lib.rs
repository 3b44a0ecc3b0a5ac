//! `kv_sdk7`: uses Spin key-value through the Spin Rust SDK 7, whose
//! `#[http_service]` builds a WASI 0.3 component that imports
//! `spin:key-value/key-value@3.0.0`, where every store function is async and
//! `get-keys` returns a stream. It tests the gateway's key-value capability on the
//! p3 path, with the same contract as `kv_sdk5`. The path after the route
//! prefix is `/<store-label>/<op>[/<percent-encoded key>]`: `GET get/<key>` (200
//! raw value, 404 `none`), `PUT|POST set/<key>` (body is the value; 200 `ok`),
//! `DELETE|GET delete/<key>` (200 `ok`), `GET exists/<key>` (200 `true`/`false`),
//! `GET keys` (200, sorted keys joined by `\n`) and `POST incr/<key>` (get + set
//! of a decimal u64, absent = 0; 200 new value, 409 if the value is not a number).
//! A key-value error answers `error=<Debug>` with 403 access-denied, 404
//! no-such-store, 500 otherwise; a malformed request gets 400 or 405.
//! `examples/kv/spin.toml` routes `/v7/...`.

use bytes::Bytes;
use guest_util::{parse_u64, percent_decode_utf8, route_path};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, Request, Response};
use spin_sdk::http_service;
use spin_sdk::key_value::{Error, Store};

#[http_service]
async fn handle(request: Request) -> Response<FullBody<Bytes>> {
    let (parts, body) = request.into_parts();
    // The gateway puts the part after the route prefix in `spin-path-info`, so the
    // route does not depend on where the app is mounted; the URI path is a
    // fallback for a host that leaves the header out.
    let path = route_path(
        parts
            .headers
            .get("spin-path-info")
            .and_then(|value| value.to_str().ok()),
        parts.uri.path(),
    );
    let reply = match parse(parts.method.as_str(), path) {
        // Read whole, like SDK 5 does for every request; only `set` uses it.
        Ok((label, op)) => match body.bytes().await {
            Ok(body) => run(label, op, &body)
                .await
                .unwrap_or_else(|failure| failure),
            Err(error) => Reply::new(400, format!("error={error:?}")),
        },
        Err(failure) => failure,
    };
    Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        // `Full<Bytes>` rather than `String`: a stored value need not be UTF-8.
        .body(FullBody::new(Bytes::from(reply.body)))
        // Only fails for an invalid status or header, and all of those are fixed.
        .expect("valid response parts")
}

/// One request after routing; the key is already percent-decoded.
enum Op {
    Get(String),
    Set(String),
    Delete(String),
    Exists(String),
    Keys,
    Incr(String),
}

async fn run(label: &str, op: Op, body: &[u8]) -> Result<Reply, Reply> {
    // Opened per request: the store label is part of the path so a test can hit
    // an allowed, a forbidden and an unknown store through the same component.
    let store = Store::open(label).await?;
    Ok(match op {
        Op::Get(key) => match store.get(&key).await? {
            Some(value) => Reply::new(200, value).content_type("application/octet-stream"),
            None => Reply::new(404, "none"),
        },
        Op::Set(key) => {
            store.set(&key, body).await?;
            Reply::new(200, "ok")
        }
        Op::Delete(key) => {
            store.delete(&key).await?;
            Reply::new(200, "ok")
        }
        Op::Exists(key) => Reply::new(200, store.exists(&key).await?.to_string()),
        Op::Keys => {
            // `get-keys` streams; `collect` also awaits the trailing result future,
            // so an error reported after the last key is not lost.
            let mut keys = store.get_keys().await.collect().await?;
            // The host's order is unspecified; sorting makes the body comparable.
            keys.sort();
            Reply::new(200, keys.join("\n"))
        }
        Op::Incr(key) => {
            // A read and a write in one request, so a benchmark measures both and
            // a crash test can kill the host between them.
            let current = match store.get(&key).await? {
                Some(value) => parse_u64(&value).ok_or_else(|| {
                    Reply::new(409, format!("error=value of {key:?} is not a decimal u64"))
                })?,
                None => 0,
            };
            let next = current
                .checked_add(1)
                .ok_or_else(|| Reply::new(409, format!("error=value of {key:?} overflows u64")))?;
            store.set(&key, next.to_string().as_bytes()).await?;
            Reply::new(200, next.to_string())
        }
    })
}

/// Splits `/<label>/<op>[/<key>]` and checks the method; the key is the whole
/// rest of the path, so an encoded or literal `/` stays inside it.
fn parse<'a>(method: &str, path: &'a str) -> Result<(&'a str, Op), Reply> {
    let mut parts = path.strip_prefix('/').unwrap_or(path).splitn(3, '/');
    let label = parts.next().filter(|label| !label.is_empty());
    let op = parts.next().unwrap_or_default();
    let key = parts.next();
    let Some(label) = label else {
        return Err(Reply::new(400, "expected /<store-label>/<op>[/<key>]"));
    };
    let allowed: &[&str] = match op {
        "get" | "exists" | "keys" => &["GET"],
        "set" => &["PUT", "POST"],
        "delete" => &["DELETE", "GET"],
        "incr" => &["POST"],
        _ => return Err(Reply::new(400, format!("unknown operation {op:?}"))),
    };
    if !allowed.contains(&method) {
        return Err(Reply::new(
            405,
            format!("{op} takes {}", allowed.join(" or ")),
        ));
    }
    if op == "keys" {
        return match key {
            None | Some("") => Ok((label, Op::Keys)),
            Some(_) => Err(Reply::new(400, "keys takes no key")),
        };
    }
    let key = key.ok_or_else(|| Reply::new(400, format!("{op} needs a key")))?;
    let key = percent_decode_utf8(key)
        .ok_or_else(|| Reply::new(400, "key is not valid percent-encoded UTF-8"))?;
    let op = match op {
        "get" => Op::Get(key),
        "set" => Op::Set(key),
        "delete" => Op::Delete(key),
        "exists" => Op::Exists(key),
        _ => Op::Incr(key),
    };
    Ok((label, op))
}

/// A response in the making; also the error type, so `?` can end a request early.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: "text/plain",
            body: body.into(),
        }
    }

    fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }
}

/// Distinct statuses let a test tell the host's error variants apart without
/// parsing the body.
impl From<Error> for Reply {
    fn from(error: Error) -> Self {
        let status = match error {
            Error::AccessDenied => 403,
            Error::NoSuchStore => 404,
            _ => 500,
        };
        Reply::new(status, format!("error={error:?}"))
    }
}
