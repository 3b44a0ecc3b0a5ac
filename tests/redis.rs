//! Outbound Redis end to end, against a real redis-server on a free port:
//! every operation from Spin SDK 5 (fermyon:spin/redis@2.0.0) and SDK 7
//! (spin:redis/redis@3.0.0), the host grant, type errors, and a server that
//! goes away and comes back.

use crate::harness;

use harness::{Gateway, RedisServer, client, examples};

fn redis_app() -> std::path::PathBuf {
    examples().join("redis")
}

async fn call(method: &str, url: &str, redis: &str, body: &[u8]) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client()
        .request(method, url)
        .header("x-redis-address", redis)
        .body(body.to_vec())
        .send()
        .await
        .expect("request failed");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_from_both_generations() {
    let redis = RedisServer::start();
    let gw = Gateway::start(&redis_app());
    let addr = redis.address();
    for sdk in ["v5", "v7"] {
        let url = |path: &str| gw.url(&format!("/{sdk}{path}"));
        let key = |name: &str| format!("{sdk}-{name}");
        assert_eq!(
            call("PUT", &url(&format!("/set/{}", key("k"))), &addr, b"value").await,
            (200, "ok".into())
        );
        assert_eq!(
            call("GET", &url(&format!("/get/{}", key("k"))), &addr, b"").await,
            (200, "value".into())
        );
        assert_eq!(
            call("GET", &url(&format!("/get/{}", key("none"))), &addr, b"")
                .await
                .0,
            404
        );
        assert_eq!(
            call("POST", &url(&format!("/incr/{}", key("n"))), &addr, b"").await,
            (200, "1".into())
        );
        assert_eq!(
            call("POST", &url(&format!("/incr/{}", key("n"))), &addr, b"").await,
            (200, "2".into())
        );
        let members = format!("/sadd/{}/a,b,c", key("s"));
        assert_eq!(
            call("POST", &url(&members), &addr, b"").await,
            (200, "3".into())
        );
        assert_eq!(
            call("GET", &url(&format!("/smembers/{}", key("s"))), &addr, b"").await,
            (200, "a\nb\nc".into())
        );
        assert_eq!(
            call("POST", &url(&format!("/srem/{}/a,z", key("s"))), &addr, b"").await,
            (200, "1".into())
        );
        assert_eq!(
            call(
                "POST",
                &url(&format!("/del/{},{},{}", key("k"), key("n"), key("x"))),
                &addr,
                b""
            )
            .await,
            (200, "2".into())
        );
        assert_eq!(
            call("POST", &url("/publish/news"), &addr, b"hello").await,
            (200, "ok".into())
        );
        let (status, body) = call(
            "POST",
            &url(&format!("/execute/SET/{},raw", key("e"))),
            &addr,
            b"",
        )
        .await;
        assert_eq!(status, 200, "{sdk}: {body}");
        assert!(body.contains("Status(\"OK\")"), "{sdk}: {body}");
        let (status, body) = call(
            "POST",
            &url(&format!("/execute/GET/{}", key("e"))),
            &addr,
            b"",
        )
        .await;
        assert_eq!(status, 200, "{sdk}: {body}");
        assert!(body.contains("Binary([114, 97, 119])"), "{sdk}: {body}");
        // INCR on a value that is not a number is a type error.
        assert_eq!(
            call("PUT", &url(&format!("/set/{}", key("t"))), &addr, b"abc")
                .await
                .0,
            200
        );
        let (status, body) = call("POST", &url(&format!("/incr/{}", key("t"))), &addr, b"").await;
        assert_eq!(status, 502, "{sdk}: {body}");
        assert!(body.contains("TypeError"), "{sdk}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_granted_addresses_can_be_opened() {
    let redis = RedisServer::start();
    let gw = Gateway::start(&redis_app());
    // The same server, under a name the manifest does not grant.
    let denied = format!("redis://localhost:{}", redis.port);
    for sdk in ["v5", "v7"] {
        let (status, body) = call("GET", &gw.url(&format!("/{sdk}/get/x")), &denied, b"").await;
        assert_eq!(status, 502, "{sdk}: {body}");
        assert!(body.contains("InvalidAddress"), "{sdk}: {body}");
        let (status, body) = call(
            "GET",
            &gw.url(&format!("/{sdk}/get/x")),
            "not an address",
            b"",
        )
        .await;
        assert_eq!(status, 502, "{sdk}: {body}");
        assert!(body.contains("InvalidAddress"), "{sdk}: {body}");
    }
    assert!(
        gw.wait_for_log("Redis connection denied", std::time::Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_goes_away_is_a_guest_error_and_comes_back() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let addr = redis.address();
    let gw = Gateway::start(&redis_app());
    assert_eq!(call("PUT", &gw.url("/v5/set/k"), &addr, b"1").await.0, 200);
    redis.stop();
    for sdk in ["v5", "v7"] {
        let (status, body) = call("GET", &gw.url(&format!("/{sdk}/get/k")), &addr, b"").await;
        assert_eq!(status, 502, "{sdk}: {body}");
        // One text whatever the moment the server went away (the README
        // shows it); never the address, which may carry a password.
        assert!(
            body.contains(&format!(
                "Other(\"127.0.0.1:{port}: cannot reach the Redis server ("
            )),
            "{sdk}: {body}"
        );
    }
    // The gateway itself keeps serving. Each thread's connection learns on
    // its own that the server went away, so a request may fail once per
    // thread; after that, every request succeeds.
    let _redis = RedisServer::start_on(port);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut failed = 0;
    for _ in 0..50 {
        if call("PUT", &gw.url("/v7/set/k"), &addr, b"2").await.0 == 200 {
            break;
        }
        failed += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for _ in 0..20 {
        match call("GET", &gw.url("/v5/get/k"), &addr, b"").await {
            (200, body) => assert_eq!(body, "2"),
            _ => failed += 1,
        }
    }
    // Two serving threads per core at most (HTTP and pub/sub), and a refusal
    // while reconnecting is retried, so a broken connection fails once.
    assert!(
        failed <= 2 * threads,
        "{failed} failed requests after the server came back:\n{}",
        gw.logs()
    );
}

/// Connections the server has open now (its own count), besides the one asking.
async fn server_connections(address: &str) -> usize {
    let client = redis::Client::open(address).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut connection)
        .await
        .unwrap();
    list.lines().count() - 1
}

#[tokio::test(flavor = "multi_thread")]
async fn spellings_share_a_connection_and_connections_are_capped() {
    let redis = RedisServer::start();
    let gw = Gateway::start(&redis_app());
    let addr = redis.address();
    // Forty spellings of one server: one connection per serving thread at
    // most (each thread that ran a request has its own), not forty.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for i in 0..40 {
        let spelled = format!("{addr}/?spelling={i}");
        let url = gw.url(&format!("/v5/set/k{i}"));
        assert_eq!(call("PUT", &url, &spelled, b"v").await.0, 200, "{spelled}");
    }
    let first = server_connections(&addr).await;
    assert!((1..=threads).contains(&first), "{first}: {}", gw.logs());
    // Sixteen identities (databases 0 to 15) are sixteen servers, each asked
    // once here, so one connection more each; a seventeenth (another
    // protocol) is refused, and the log says why.
    for db in 1..16 {
        let url = gw.url(&format!("/v7/set/k{db}"));
        let (status, body) = call("PUT", &url, &format!("{addr}/{db}"), b"v").await;
        assert_eq!(status, 200, "db {db}: {body}");
    }
    let url = gw.url("/v5/get/k1");
    let refused = call("GET", &url, &format!("{addr}/?protocol=resp3"), b"").await;
    harness::assert_too_many_connections(&gw, refused);
    assert_eq!(server_connections(&addr).await, first + 15);
    // The ones open keep working.
    let url = gw.url("/v5/get/k3");
    assert_eq!(call("GET", &url, &addr, b"").await, (200, "v".into()));
}
