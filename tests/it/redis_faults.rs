//! The Redis store when Redis fails at the worst moments, against real `redis-server`
//! processes: a delivered callback is never forgotten because one settle failed or was dropped,
//! and a late release never frees another request's reservation (feature `redis`).
#![cfg(feature = "redis")]

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post as axum_post;
use axum::Router;
use common::redis_servers::RedisServer;
use common::*;
use http::{HeaderMap, StatusCode};
use redis::AsyncCommands;
use vonage_secure_callbacks::replay::{RedisReplayStore, ReplayKey};

const BODY: &[u8] = br#"{"sessionId":"1_MX4","event":"connectionCreated"}"#;

async fn store(url: &str, timeout: Duration, in_flight_ttl: Duration) -> RedisReplayStore {
    RedisReplayStore::builder(url)
        .timeout(timeout)
        .prefix(format!(
            "faults-{}",
            vonage_secure_callbacks::test_util::fresh_jti()
        ))
        .in_flight_ttl(in_flight_ttl)
        .connect()
        .await
        .unwrap()
}

/// Polls `GET key` (bounded) until it answers `want`.
/// Waits until `key`'s value starts with `want`.
async fn wait_for_value(url: &str, key: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(client) = redis::Client::open(url) {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let value: Option<String> = c.get(key).await.unwrap_or(None);
                if value.as_deref().is_some_and(|v| v.starts_with(want)) {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "{key} never became {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The key of `token` ends `done:<time>`; once the in-flight TTL has run out (`ttl_ends`), a replay of
/// the callback is refused, not accepted as it would be had the key stayed in flight.
async fn ends_done_and_refuses_the_replay(
    store: &RedisReplayStore,
    url: &str,
    token: &str,
    addr: std::net::SocketAddr,
    ttl_ends: Instant,
) {
    let key = store.redis_key(&ReplayKey::new(API_KEY, &claim_of(token, "jti").unwrap()));
    wait_for_value(url, &key, "done:", Duration::from_secs(5)).await;
    let past_ttl = ttl_ends + Duration::from_millis(500);
    tokio::time::sleep(past_ttl.saturating_duration_since(Instant::now())).await;
    let replay = post(addr, Some(&format!("Bearer {token}")), BODY).await;
    assert_eq!(replay.error(), "replayed_token", "{replay:?}");
}

/// An app whose handler first does `to_redis` to the server, then answers 200.
fn app_that(
    store: RedisReplayStore,
    server: Arc<Mutex<RedisServer>>,
    to_redis: fn(&mut RedisServer),
) -> Router {
    Router::new()
        .route(
            "/{*p}",
            axum_post(move || {
                let server = server.clone();
                async move {
                    to_redis(&mut server.lock().unwrap());
                    StatusCode::OK
                }
            }),
        )
        .layer(layer().replay_store(store))
}

#[tokio::test]
async fn a_settle_that_fails_after_the_2xx_is_retried_until_the_key_is_done() {
    // Redis dies between the handler's 2xx and the settle, and comes back (from its append-only
    // file) half a second later. The in-flight key it kept would expire after 2 s and let a
    // replay through; the background retry marks it done instead.
    let server = Arc::new(Mutex::new(RedisServer::start_persistent()));
    let url = server.lock().unwrap().url();
    let ttl = Duration::from_secs(2);
    let store = store(&url, Duration::from_millis(300), ttl).await;
    let addr = serve_axum(app_that(store.clone(), server.clone(), RedisServer::kill)).await;
    let token = token_at_now(BODY, |_| {});
    let auth = format!("Bearer {token}");
    let reserved_at = Instant::now();
    assert_eq!(post(addr, Some(&auth), BODY).await.status, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(300)).await;
    server.lock().unwrap().restart();
    ends_done_and_refuses_the_replay(&store, &url, &token, addr, reserved_at + ttl).await;
}

#[tokio::test]
async fn a_request_dropped_while_settling_still_ends_done() {
    // The handler answers 2xx and Redis freezes, so the settle hangs; a TimeoutLayer outside the
    // layer (as SECURITY.md recommends) drops the response future mid-settle. Redis is then
    // killed (the frozen write never lands) and restarted from its append-only file.
    let server = Arc::new(Mutex::new(RedisServer::start_persistent()));
    let url = server.lock().unwrap().url();
    let ttl = Duration::from_secs(3);
    let store = store(&url, Duration::from_millis(500), ttl).await;
    let app = app_that(store.clone(), server.clone(), |s| s.freeze()).layer(
        tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(200),
        ),
    );
    let addr = serve_axum(app).await;
    let token = token_at_now(BODY, |_| {});
    let auth = format!("Bearer {token}");
    let reserved_at = Instant::now();
    assert_eq!(
        post(addr, Some(&auth), BODY).await.status,
        StatusCode::REQUEST_TIMEOUT,
        "the future was dropped while settling"
    );

    {
        let mut server = server.lock().unwrap();
        server.kill();
        server.restart();
    }
    ends_done_and_refuses_the_replay(&store, &url, &token, addr, reserved_at + ttl).await;
}

#[tokio::test]
async fn a_late_release_never_frees_another_requests_reservation() {
    // In-flight TTL 1 s. A's handler takes 1.5 s and fails; B, sent at 1.1 s (A's reservation
    // has expired), takes 1 s and succeeds. A's release at 1.5 s must leave B's reservation be.
    let server = RedisServer::start();
    let store = store(
        &server.url(),
        Duration::from_millis(500),
        Duration::from_secs(1),
    )
    .await;
    let app = Router::new()
        .route(
            "/{*p}",
            axum_post(|headers: HeaderMap| async move {
                let header =
                    |name: &str| -> u64 { headers[name].to_str().unwrap().parse().unwrap() };
                tokio::time::sleep(Duration::from_millis(header("x-hold-ms"))).await;
                StatusCode::from_u16(header("x-status") as u16).unwrap()
            }),
        )
        .layer(layer().replay_store(store.clone()));
    let addr = serve_axum(app).await;
    let token = token_at_now(BODY, |_| {});
    let key = store.redis_key(&ReplayKey::new(API_KEY, &claim_of(&token, "jti").unwrap()));
    let send_with = |hold: u64, status: u16| {
        let req = http::Request::post(format!("http://{addr}/cb"))
            .header("authorization", format!("Bearer {token}"))
            .header("x-hold-ms", hold.to_string())
            .header("x-status", status.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::from_static(BODY)))
            .unwrap();
        tokio::spawn(send(req))
    };
    let a = send_with(1500, 500);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = send_with(1000, 200);
    assert_eq!(a.await.unwrap().status, StatusCode::INTERNAL_SERVER_ERROR);
    tokio::time::sleep(Duration::from_millis(150)).await;

    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let held: Option<String> = redis.get(&key).await.unwrap();
    assert!(
        held.as_deref().is_some_and(|v| v.starts_with("in-flight:")),
        "B's reservation is still there: {held:?}"
    );
    let c = send_with(0, 200).await.unwrap();
    assert_eq!(c.error(), "duplicate_in_flight", "{c:?}");
    assert_eq!(b.await.unwrap().status, StatusCode::OK);
    let done: String = redis.get(&key).await.unwrap();
    assert!(done.starts_with("done:"), "{done}");
    assert_eq!(send_with(0, 200).await.unwrap().error(), "replayed_token");
}
