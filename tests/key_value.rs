//! Key-value end to end: components built with Spin SDK 5
//! (fermyon:spin/key-value@2.0.0) and SDK 7 (spin:key-value/key-value@3.0.0)
//! share the app's embedded default store; grants, limits, seeding, restarts
//! and a `kill -9` in the middle of a write loop.

use crate::harness;

use std::time::Duration;

use harness::{Gateway, Options, client, examples, get};

fn kv_app() -> std::path::PathBuf {
    examples().join("kv")
}

async fn put(url: &str, body: Vec<u8>) -> (u16, String) {
    let response = client()
        .put(url)
        .body(body)
        .send()
        .await
        .expect("request failed");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn post(url: &str) -> (u16, String) {
    let response = client().post(url).send().await.expect("request failed");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn both_generations_share_the_default_store() {
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(
        &kv_app(),
        Options {
            state_dir: Some(state.path()),
            ..Options::default()
        },
    );
    assert_eq!(
        put(&gw.url("/v5/default/set/colour"), b"blue".to_vec()).await,
        (200, "ok".into())
    );
    assert_eq!(
        get(&gw.url("/v7/default/get/colour")).await,
        (200, "blue".into())
    );
    assert_eq!(
        put(&gw.url("/v7/default/set/shape"), b"round".to_vec()).await,
        (200, "ok".into())
    );
    for sdk in ["v5", "v7"] {
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/default/get/shape"))).await,
            (200, "round".into())
        );
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/default/exists/shape"))).await,
            (200, "true".into())
        );
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/default/exists/nothing"))).await,
            (200, "false".into())
        );
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/default/get/nothing"))).await,
            (404, "none".into())
        );
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/default/keys"))).await,
            (200, "colour\nshape".into())
        );
    }
    assert_eq!(
        get(&gw.url("/v7/default/delete/colour")).await,
        (200, "ok".into())
    );
    assert_eq!(
        get(&gw.url("/v5/default/keys")).await,
        (200, "shape".into())
    );
    // Binary values round-trip unchanged.
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(
        put(&gw.url("/v5/default/set/bin"), bytes.clone()).await.0,
        200
    );
    let body = client()
        .get(gw.url("/v7/default/get/bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.to_vec(), bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_must_be_granted_and_configured() {
    let gw = Gateway::start(&kv_app());
    for sdk in ["v5", "v7"] {
        let (status, body) = get(&gw.url(&format!("/{sdk}/secret/get/x"))).await;
        assert_eq!(status, 403, "{sdk}: {body}");
        assert!(body.contains("AccessDenied"), "{sdk}: {body}");
        // Granted in the manifest, but no store is configured under that label.
        let (status, body) = get(&gw.url(&format!("/{sdk}/other/get/x"))).await;
        assert_eq!(status, 404, "{sdk}: {body}");
        assert!(body.contains("NoSuchStore"), "{sdk}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_values_over_the_limits_are_refused() {
    let gw = Gateway::start(&kv_app());
    let long_key = "k".repeat(256);
    for sdk in ["v5", "v7"] {
        let (status, body) = put(
            &gw.url(&format!("/{sdk}/default/set/{long_key}")),
            b"x".to_vec(),
        )
        .await;
        assert_eq!(status, 500, "{sdk}: {body}");
        assert!(body.contains("the limit is 255"), "{sdk}: {body}");
        let (status, body) = put(
            &gw.url(&format!("/{sdk}/default/set/big")),
            vec![b'x'; (1 << 20) + 1],
        )
        .await;
        assert_eq!(status, 500, "{sdk}: {body}");
        assert!(body.contains("the limit is 1048576"), "{sdk}: {body}");
        let (status, _) = put(
            &gw.url(&format!("/{sdk}/default/set/fits")),
            vec![b'x'; 1 << 20],
        )
        .await;
        assert_eq!(status, 200, "{sdk}");
    }
}

/// An embedded store is bounded in keys and in bytes: a component that
/// keeps writing gets an error naming the limit, and what it stored stays
/// readable (and deletable, which makes room again).
#[tokio::test(flavor = "multi_thread")]
async fn a_full_store_refuses_more_and_keeps_what_it_has() {
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(
        &kv_app(),
        Options {
            state_dir: Some(state.path()),
            args: &[
                "--key-value-max-keys",
                "3",
                "--key-value-max-store-size",
                "2KiB",
            ],
            ..Options::default()
        },
    );
    for key in ["a", "b", "c"] {
        let url = gw.url(&format!("/v7/default/set/{key}"));
        assert_eq!(put(&url, b"1".to_vec()).await.0, 200);
    }
    for sdk in ["v5", "v7"] {
        let (status, body) = put(&gw.url(&format!("/{sdk}/default/set/d")), b"1".to_vec()).await;
        assert_eq!(status, 500, "{sdk}: {body}");
        assert!(
            body.contains("the store is full: it holds 3 keys"),
            "{sdk}: {body}"
        );
    }
    let (status, body) = put(&gw.url("/v7/default/set/a"), vec![b'x'; 2048]).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("its limit is 2048"), "{body}");
    assert_eq!(get(&gw.url("/v5/default/get/a")).await, (200, "1".into()));
    assert_eq!(get(&gw.url("/v7/default/delete/b")).await.0, 200);
    assert_eq!(
        put(&gw.url("/v7/default/set/d"), b"1".to_vec()).await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_values_survive_restarts() {
    let state = tempfile::tempdir().unwrap();
    let options = |args| Options {
        state_dir: Some(state.path()),
        args,
        ..Options::default()
    };
    let gw = Gateway::start_with(&kv_app(), options(&["--key-value", "greeting=hi there"]));
    assert_eq!(
        get(&gw.url("/v5/default/get/greeting")).await,
        (200, "hi there".into())
    );
    assert_eq!(
        put(&gw.url("/v7/default/set/later"), b"kept".to_vec())
            .await
            .0,
        200
    );
    drop(gw);
    let gw = Gateway::start_with(&kv_app(), options(&[]));
    assert_eq!(
        get(&gw.url("/v7/default/get/greeting")).await,
        (200, "hi there".into())
    );
    assert_eq!(
        get(&gw.url("/v5/default/get/later")).await,
        (200, "kept".into())
    );
}

/// Every increment the gateway acknowledged is on disk after `kill -9`.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_during_writes_loses_no_acknowledged_value() {
    let state = tempfile::tempdir().unwrap();
    let options = || Options {
        state_dir: Some(state.path()),
        ..Options::default()
    };
    let gw = Gateway::start_with(&kv_app(), options());
    let url = gw.url("/v5/default/incr/counter");
    let writer = tokio::spawn(async move {
        let mut acknowledged = 0u64;
        for _ in 0..5000 {
            match client().post(&url).send().await {
                Ok(response) if response.status().as_u16() == 200 => {
                    let value: u64 = response
                        .text()
                        .await
                        .unwrap_or_default()
                        .parse()
                        .unwrap_or(0);
                    if value > 0 {
                        acknowledged = value;
                    }
                }
                _ => break,
            }
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.signal(libc::SIGKILL);
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged > 10,
        "too few writes before the kill: {acknowledged}"
    );
    drop(gw);

    let gw = Gateway::start_with(&kv_app(), options());
    let (status, body) = get(&gw.url("/v5/default/get/counter")).await;
    assert_eq!(status, 200);
    let stored: u64 = body.parse().unwrap();
    // The value in flight when the process died may or may not have landed.
    assert!(
        stored == acknowledged || stored == acknowledged + 1,
        "acknowledged {acknowledged}, stored {stored}"
    );
    assert_eq!(
        post(&gw.url("/v7/default/incr/counter")).await,
        (200, (stored + 1).to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_config_file_places_stores_and_the_value_limit_is_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runtime.toml");
    std::fs::write(
        &config,
        "[key_value_store.other]\ntype = \"spin\"\npath = \"stores/other.db\"\n",
    )
    .unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let gw = Gateway::start_with(
        &kv_app(),
        Options {
            args: &[
                "--runtime-config-file",
                &config_arg,
                "--key-value-max-value-size",
                "1KiB",
            ],
            ..Options::default()
        },
    );
    // "other" is granted by the manifest and now configured: it works, in its own file.
    assert_eq!(
        put(&gw.url("/v7/other/set/k"), b"in other".to_vec()).await,
        (200, "ok".into())
    );
    assert_eq!(
        get(&gw.url("/v5/other/get/k")).await,
        (200, "in other".into())
    );
    assert_eq!(
        get(&gw.url("/v5/default/get/k")).await.0,
        404,
        "stores must not share keys"
    );
    assert!(dir.path().join("stores/other.db").is_file());
    let (status, body) = put(&gw.url("/v5/default/set/big"), vec![b'x'; 1025]).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("the limit is 1024"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_can_live_on_a_redis_server() {
    let redis = harness::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runtime.toml");
    std::fs::write(
        &config,
        format!(
            "[key_value_store.other]\ntype = \"redis\"\nurl = \"{}\"\n",
            redis.address()
        ),
    )
    .unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let gw = Gateway::start_with(
        &kv_app(),
        Options {
            args: &["--runtime-config-file", &config_arg],
            ..Options::default()
        },
    );
    assert_eq!(
        put(&gw.url("/v5/other/set/colour"), b"green".to_vec()).await,
        (200, "ok".into())
    );
    assert_eq!(
        put(&gw.url("/v7/other/set/shape"), b"square".to_vec()).await,
        (200, "ok".into())
    );
    for sdk in ["v5", "v7"] {
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/other/get/colour"))).await,
            (200, "green".into())
        );
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/other/exists/shape"))).await,
            (200, "true".into())
        );
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/other/keys"))).await,
            (200, "colour\nshape".into())
        );
    }
    assert_eq!(
        get(&gw.url("/v7/other/delete/shape")).await,
        (200, "ok".into())
    );
    // The data is really in Redis.
    assert_eq!(
        harness::redis_get(&redis.address(), "colour")
            .await
            .as_deref(),
        Some("green")
    );
    assert_eq!(harness::redis_get(&redis.address(), "shape").await, None);
}
