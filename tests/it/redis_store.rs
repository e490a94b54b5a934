//! The Redis replay store against real Redis servers on loopback (feature `redis`).
//!
//! Each test starts its own `redis-server` on a free loopback port (never 6379), except the
//! sharing tests, which use `REDIS_URL` when it is set (CI starts one) with a prefix of their
//! own. `redis-server` must be on `PATH` (`apt-get install redis-server`).
#![cfg(feature = "redis")]

use crate::common;

use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

use axum::routing::post as axum_post;
use axum::Router;
use common::redis_servers::RedisServer;
use common::*;
use http::StatusCode;
use redis::AsyncCommands;
use serde_json::json;
use vonage_secure_callbacks::replay::{RedisReplayStore, ReplayKey};

const BODY: &[u8] = br#"{"sessionId":"1_MX4","event":"streamCreated"}"#;

/// `REDIS_URL` when set, else a server of this test's own (kept alive by the returned guard).
fn shared_redis() -> (String, Option<RedisServer>) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = RedisServer::start();
            (server.url(), Some(server))
        }
    }
}

fn unique_prefix(test: &str) -> String {
    format!(
        "test-{test}-{}",
        vonage_secure_callbacks::test_util::fresh_jti()
    )
}

async fn store(url: &str, prefix: &str) -> RedisReplayStore {
    RedisReplayStore::builder(url)
        .timeout(Duration::from_millis(500))
        .prefix(prefix)
        .connect()
        .await
        .unwrap()
}

/// A plain connection, to look at the keys the store wrote.
async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits (at most 5 s) for `key` to disappear.
async fn wait_until_gone(redis: &mut redis::aio::MultiplexedConnection, key: &str, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exists: bool = redis.exists(key).await.unwrap();
        if !exists {
            return;
        }
        assert!(Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An app whose handler takes `delay` before answering 200.
fn slow_app(store: RedisReplayStore, delay: Duration) -> Router {
    Router::new()
        .route(
            "/{*p}",
            axum_post(move || async move {
                tokio::time::sleep(delay).await;
                StatusCode::OK
            }),
        )
        .layer(layer().replay_store(store))
}

#[tokio::test]
async fn a_callback_accepted_by_one_instance_is_refused_by_the_other() {
    let (url, _guard) = shared_redis();
    let prefix = unique_prefix("two");
    let a = serve_axum(echo_app(layer().replay_store(store(&url, &prefix).await))).await;
    let b = serve_axum(echo_app(layer().replay_store(store(&url, &prefix).await))).await;
    let auth = bearer(BODY);
    assert_eq!(post(a, Some(&auth), BODY).await.status, StatusCode::OK);
    let replay = post(b, Some(&auth), BODY).await;
    assert_eq!(replay.status, StatusCode::CONFLICT);
    assert_eq!(replay.error(), "replayed_token");

    // Another prefix (another app) does not see it.
    let other = unique_prefix("other");
    let c = serve_axum(echo_app(layer().replay_store(store(&url, &other).await))).await;
    assert_eq!(post(c, Some(&auth), BODY).await.status, StatusCode::OK);
}

#[tokio::test]
async fn concurrent_deliveries_to_both_instances_give_exactly_one_success() {
    let (url, _guard) = shared_redis();
    let prefix = unique_prefix("concurrent");
    let delay = Duration::from_millis(50);
    let a = serve_axum(slow_app(store(&url, &prefix).await, delay)).await;
    let b = serve_axum(slow_app(store(&url, &prefix).await, delay)).await;
    for _ in 0..10 {
        let auth = bearer(BODY);
        let tasks: Vec<_> = [a, b, a, b]
            .into_iter()
            .map(|addr| {
                let auth = auth.clone();
                tokio::spawn(async move { post(addr, Some(&auth), BODY).await })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            let reply = task.await.unwrap();
            match reply.status {
                StatusCode::OK => ok += 1,
                _ => assert!(
                    matches!(
                        reply.error().as_str(),
                        "duplicate_in_flight" | "replayed_token"
                    ),
                    "{reply:?}"
                ),
            }
        }
        assert_eq!(ok, 1);
    }
}

#[tokio::test]
async fn a_failing_inner_service_releases_the_jti() {
    let (url, _guard) = shared_redis();
    let prefix = unique_prefix("release");
    let store = store(&url, &prefix).await;
    let (app, _calls) = answering_by_call(|n| async move {
        match n {
            0 => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        }
    });
    let app = app.layer(layer().replay_store(store.clone()));
    let addr = serve_axum(app).await;
    let token = token_at_now(BODY, |_| {});
    let auth = format!("Bearer {token}");
    assert_eq!(
        post(addr, Some(&auth), BODY).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let key = store.redis_key(&ReplayKey::new(API_KEY, &claim_of(&token, "jti").unwrap()));
    let mut redis = connect(&url).await;
    let exists: bool = redis.exists(&key).await.unwrap();
    assert!(!exists, "the failed delivery left no key behind");

    assert_eq!(post(addr, Some(&auth), BODY).await.status, StatusCode::OK);
    let value: String = redis.get(&key).await.unwrap();
    // Delivered, and when: the layer's clock stands at NOW in these tests.
    assert_eq!(value, format!("done:{NOW}"));
    assert_eq!(
        post(addr, Some(&auth), BODY).await.error(),
        "replayed_token"
    );
}

#[tokio::test]
async fn a_dropped_request_releases_its_reservation() {
    let (url, _guard) = shared_redis();
    let prefix = unique_prefix("dropped");
    let store = store(&url, &prefix).await;
    // The handler never answers; the client gives up; the spawned release must remove the key.
    let addr = serve_axum(slow_app(store.clone(), Duration::from_secs(3600))).await;
    let token = token_at_now(BODY, |_| {});
    let auth = format!("Bearer {token}");
    let gave_up = tokio::time::timeout(Duration::from_millis(300), post(addr, Some(&auth), BODY));
    assert!(gave_up.await.is_err());
    let key = store.redis_key(&ReplayKey::new(API_KEY, &claim_of(&token, "jti").unwrap()));
    let mut redis = connect(&url).await;
    wait_until_gone(&mut redis, &key, "the reservation outlived its request").await;
}

#[tokio::test]
async fn entries_expire_with_the_token() {
    let (url, _guard) = shared_redis();
    let prefix = unique_prefix("ttl");
    let store = store(&url, &prefix).await;
    // Max age 60 s, token issued 59 s ago: accepted through the next second (its age reaches
    // 60 there), so remembered for two.
    let app = echo_app(
        layer_with(|v| {
            v.max_age(Duration::from_secs(60))
                .clock_skew(Duration::ZERO)
        })
        .replay_store(store.clone()),
    );
    let addr = serve_axum(app).await;
    let token = token_at_now(BODY, |c| {
        c.insert("iat".into(), json!(NOW - 59));
    });
    assert_eq!(
        post(addr, Some(&format!("Bearer {token}")), BODY)
            .await
            .status,
        StatusCode::OK
    );

    let key = store.redis_key(&ReplayKey::new(API_KEY, &claim_of(&token, "jti").unwrap()));
    let mut redis = connect(&url).await;
    let pttl: i64 = redis.pttl(&key).await.unwrap();
    assert!(
        (1001..=2000).contains(&pttl),
        "expires after the last second the token is accepted: {pttl} ms"
    );
    wait_until_gone(&mut redis, &key, "the key never expired").await;
}

#[tokio::test]
async fn redis_down_gives_503_within_the_timeout_and_recovers() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let store = RedisReplayStore::builder(&server.url())
        .timeout(timeout)
        .prefix(unique_prefix("down"))
        .connect()
        .await
        .unwrap();
    let addr = serve_axum(echo_app(layer().replay_store(store))).await;
    assert_eq!(
        post(addr, Some(&bearer(BODY)), BODY).await.status,
        StatusCode::OK
    );

    server.kill();
    let started = Instant::now();
    let reply = post(addr, Some(&bearer(BODY)), BODY).await;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.error(), "replay_store_unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    assert!(
        took < timeout + Duration::from_millis(500),
        "answered in {took:?}"
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = post(addr, Some(&bearer(BODY)), BODY).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(reply.error(), "replay_store_unavailable");
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connecting_to_nothing_fails_cleanly() {
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisReplayStore::builder(&format!("redis://127.0.0.1:{port}/"))
        .timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("replay store unavailable"),
        "{err}"
    );
}

#[test]
fn two_example_servers_share_replay_protection_through_redis() {
    use common::example::{address, run_printed_curl, start};
    let (url, _guard) = shared_redis();
    let secret = "shared-signature-secret-for-two-instances";
    let env = [
        ("VONAGE_API_KEY", "abcd1234"),
        ("VONAGE_SIGNATURE_SECRET", secret),
        ("REPLAY_STORE", url.as_str()),
    ];
    let (_a, lines_a) = start(&env);
    let (_b, lines_b) = start(&env);
    for lines in [&lines_a, &lines_b] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("replay store: Redis at")),
            "{lines:?}"
        );
    }
    // Production mode prints nothing signed: the test signs the callback Vonage would send.
    let body = r#"{"sessionId":"2_MX4","event":"connectionCreated"}"#;
    let auth = vonage_secure_callbacks::test_util::CallbackSigner::new("abcd1234", secret)
        .authorization(body.as_bytes());
    let curl = |addr: &str| {
        format!("curl -sS -X POST http://{addr}/vonage/session -H 'Authorization: {auth}' --data-raw '{body}'")
    };
    let first = run_printed_curl(&curl(&address(&lines_a)));
    assert!(first.ends_with("\n200"), "{first}");
    // The same signed callback, replayed against the other instance.
    let replay = run_printed_curl(&curl(&address(&lines_b)));
    assert!(replay.ends_with("\n409"), "{replay}");
    assert!(replay.contains("replayed_token"));
}
