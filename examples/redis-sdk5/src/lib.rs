//! `redis_sdk5`: uses Spin's outbound Redis through the Spin Rust SDK 5, whose
//! `#[http_component]` builds a WASI 0.2 component that imports
//! `fermyon:spin/redis@2.0.0`. It tests the gateway's Redis capability on the p2
//! path, with the same contract as `redis_sdk7`. The server address comes from the
//! `x-redis-address` header (e.g. `redis://127.0.0.1:6380`; missing = 400), the
//! path after the route prefix from `spin-path-info` (else the URI path), and
//! every path piece is percent-decoded: `PUT set/<key>` (body is the value; `ok`),
//! `GET get/<key>` (raw value, 404 `none`), `POST incr/<key>` (new value),
//! `POST del/<k1>,<k2>` (number deleted), `POST sadd/<key>/<v1>,<v2>` (number
//! added), `GET smembers/<key>` (sorted members joined by `\n`),
//! `POST srem/<key>/<v1>,..` (number removed), `POST publish/<channel>` (body is
//! the payload; `ok`) and `POST execute/<COMMAND>[/<a1>,<a2>..]` (binary
//! arguments; each result's Debug on its own line). A Redis error from opening
//! or an operation answers 502 `error=<Debug>`; a malformed request gets 400 or
//! 405. `examples/redis/spin.toml` routes `/v5/...`.

use guest_util::{comma_list, percent_decode, percent_decode_utf8, route_path};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::redis::{Connection, Error, RedisParameter};

#[http_component]
fn handle(request: Request) -> Response {
    // The gateway puts the part after the route prefix in `spin-path-info`, so the
    // route does not depend on where the app is mounted; the URI path is a
    // fallback for a host that leaves the header out.
    let path = route_path(
        request
            .header("spin-path-info")
            .and_then(|value| value.as_str()),
        request.path(),
    );
    let address = request
        .header("x-redis-address")
        .and_then(|value| value.as_str());
    let reply = parse(method_name(request.method()), path)
        .and_then(|op| {
            // Per request: tests start redis-server on a free port and say which.
            let address = address.ok_or_else(|| Reply::new(400, "missing x-redis-address"))?;
            run(address, op, request.body())
        })
        .unwrap_or_else(|failure| failure);
    Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        .body(reply.body)
        .build()
}

fn run(address: &str, op: Op, body: &[u8]) -> Result<Reply, Reply> {
    let conn = Connection::open(address)?;
    Ok(match op {
        Op::Set(key) => {
            conn.set(&key, body)?;
            Reply::new(200, "ok")
        }
        Op::Get(key) => match conn.get(&key)? {
            Some(value) => Reply::new(200, value).content_type("application/octet-stream"),
            None => Reply::new(404, "none"),
        },
        Op::Incr(key) => Reply::new(200, conn.incr(&key)?.to_string()),
        Op::Del(keys) => Reply::new(200, conn.del(&keys)?.to_string()),
        Op::Sadd(key, values) => Reply::new(200, conn.sadd(&key, &values)?.to_string()),
        Op::Smembers(key) => {
            let mut members = conn.smembers(&key)?;
            // A set has no order; sorting makes the body comparable.
            members.sort();
            Reply::new(200, members.join("\n"))
        }
        Op::Srem(key, values) => Reply::new(200, conn.srem(&key, &values)?.to_string()),
        Op::Publish(channel) => {
            conn.publish(&channel, body)?;
            Reply::new(200, "ok")
        }
        Op::Execute(command, args) => {
            let args: Vec<_> = args.into_iter().map(RedisParameter::Binary).collect();
            let results = conn.execute(&command, &args)?;
            let lines: Vec<_> = results.iter().map(|result| format!("{result:?}")).collect();
            Reply::new(200, lines.join("\n"))
        }
    })
}

/// SDK 5's `Method` is the WIT enum, which has no `as_str`.
fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

/// One request after routing; keys, members and arguments are percent-decoded.
enum Op {
    Set(String),
    Get(String),
    Incr(String),
    Del(Vec<String>),
    Sadd(String, Vec<String>),
    Smembers(String),
    Srem(String, Vec<String>),
    Publish(String),
    Execute(String, Vec<Vec<u8>>),
}

/// Splits `/<op>/<rest>` and checks the method. A list is comma-separated and
/// split before decoding, so `%2C` and `%2F` stay inside one piece.
fn parse(method: &str, path: &str) -> Result<Op, Reply> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (op, rest) = path.split_once('/').unwrap_or((path, ""));
    let allowed: &[&str] = match op {
        "set" => &["PUT", "POST"],
        "get" | "smembers" => &["GET"],
        "incr" | "del" | "sadd" | "srem" | "publish" | "execute" => &["POST"],
        _ => return Err(Reply::new(400, format!("unknown operation {op:?}"))),
    };
    if !allowed.contains(&method) {
        return Err(Reply::new(
            405,
            format!("{op} takes {}", allowed.join(" or ")),
        ));
    }
    if rest.is_empty() {
        return Err(Reply::new(400, format!("{op} needs an argument")));
    }
    Ok(match op {
        "set" => Op::Set(text(rest)?),
        "get" => Op::Get(text(rest)?),
        "incr" => Op::Incr(text(rest)?),
        "smembers" => Op::Smembers(text(rest)?),
        "publish" => Op::Publish(text(rest)?),
        "del" => Op::Del(list(rest)?),
        "sadd" | "srem" => {
            let (key, values) = rest.split_once('/').unwrap_or((rest, ""));
            let (key, values) = (text(key)?, list(values)?);
            if op == "sadd" {
                Op::Sadd(key, values)
            } else {
                Op::Srem(key, values)
            }
        }
        _ => {
            // Arguments are optional (`/execute/PING`) and need not be UTF-8.
            let (command, args) = rest.split_once('/').unwrap_or((rest, ""));
            let args = comma_list(args)
                .map(|arg| percent_decode(arg).ok_or_else(bad_escape))
                .collect::<Result<_, _>>()?;
            Op::Execute(text(command)?, args)
        }
    })
}

/// An empty string is an empty list, so a test can send one to the host.
fn list(input: &str) -> Result<Vec<String>, Reply> {
    comma_list(input).map(text).collect()
}

fn text(input: &str) -> Result<String, Reply> {
    percent_decode_utf8(input).ok_or_else(bad_escape)
}

fn bad_escape() -> Reply {
    Reply::new(400, "path piece is not valid percent-encoded UTF-8")
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

/// Every Redis failure, from `open` or an operation, is the upstream's fault.
impl From<Error> for Reply {
    fn from(error: Error) -> Self {
        Reply::new(502, format!("error={error:?}"))
    }
}
