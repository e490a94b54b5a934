//! Replay semantics through real servers: 2xx burns the `jti`; 5xx, an inner error or a dropped
//! request releases it, so Vonage's retry is accepted.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post as axum_post;
use axum::Router;
use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use vonage_secure_callbacks::replay::{
    Attempt, Lookup, ReplayKey, ReplayStore, Reservation, Retention,
};
use vonage_secure_callbacks::{MemoryReplayStore, VerifiedBody};

const BODY: &[u8] = br#"{"archiveId":"b40ef09b","status":"uploaded"}"#;

#[tokio::test]
async fn success_burns_the_jti() {
    let store = MemoryReplayStore::new();
    let addr = serve_axum(echo_app(layer().replay_store(store.clone()))).await;
    let auth = bearer(BODY);
    let first = post(addr, Some(&auth), BODY).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["body_len"], BODY.len());
    assert_eq!(
        post(addr, Some(&auth), BODY).await.error(),
        "replayed_token"
    );
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn server_error_releases_the_jti_for_the_retry() {
    // Fails twice, then succeeds: Vonage's retries of one callback.
    let (app, calls) = answering_by_call(|n| async move {
        match n {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            1 => StatusCode::BAD_REQUEST,
            _ => StatusCode::NO_CONTENT,
        }
    });
    let app = app.layer(layer());
    let addr = serve_axum(app).await;
    let auth = bearer(BODY);
    assert_eq!(
        post(addr, Some(&auth), BODY).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        post(addr, Some(&auth), BODY).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(addr, Some(&auth), BODY).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(addr, Some(&auth), BODY).await.error(),
        "replayed_token"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn inner_error_releases_the_jti() {
    // A raw hyper stack whose inner service errors on the first call: hyper drops the
    // connection, and the retry must be accepted.
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = tower::service_fn({
        let calls = calls.clone();
        move |_req: Request<VerifiedBody>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err::<Response<Full<Bytes>>, _>(std::io::Error::other("database down"))
                } else {
                    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            }
        }
    });
    let store = MemoryReplayStore::new();
    let svc = tower::ServiceBuilder::new()
        .layer(layer().replay_store(store.clone()))
        .service(inner);
    let addr = serve_hyper(svc).await;
    let auth = bearer(BODY);
    let req = || {
        Request::post(format!("http://{addr}/x"))
            .header("authorization", &auth)
            .body(Full::new(Bytes::from_static(BODY)))
            .unwrap()
    };
    assert!(
        client().request(req()).await.is_err(),
        "the inner error closes the connection"
    );
    assert!(store.is_empty(), "the failed delivery released its jti");
    assert_eq!(send(req()).await.status, StatusCode::OK);
    assert_eq!(send(req()).await.error(), "replayed_token");
}

#[tokio::test]
async fn dropped_request_releases_the_jti() {
    // The handler never answers; the client gives up; the reservation must not outlive it.
    let store = MemoryReplayStore::new();
    let app = Router::new()
        .route(
            "/{*p}",
            axum_post(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::OK
            }),
        )
        .layer(layer().replay_store(store.clone()));
    let addr = serve_axum(app).await;
    let auth = bearer(BODY);
    let give_up = tokio::time::timeout(Duration::from_millis(200), post(addr, Some(&auth), BODY));
    assert!(give_up.await.is_err());
    // The server notices the closed connection and drops the request future (bounded wait).
    for _ in 0..200 {
        if store.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the abandoned reservation was never released");
}

#[tokio::test]
async fn concurrent_duplicates_give_one_success() {
    // Slow handler, 8 deliveries of one callback at once: exactly one 200; the others are
    // answered 503 (still in flight) or 409 (already done).
    let app = Router::new()
        .route(
            "/{*p}",
            axum_post(|| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                StatusCode::OK
            }),
        )
        .layer(layer());
    let addr = serve_axum(app).await;
    let auth = bearer(BODY);
    let replies = futures_join_all((0..8).map(|_| {
        let auth = auth.clone();
        tokio::spawn(async move { post(addr, Some(&auth), BODY).await })
    }))
    .await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{replies:?}");
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert!(
            matches!(r.error().as_str(), "duplicate_in_flight" | "replayed_token"),
            "{r:?}"
        );
    }
}

async fn futures_join_all<T: 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn entries_expire_with_the_token() {
    // With a 60 s max age the jti is forgotten once the token is stale (and then refused as
    // stale, not as a replay).
    let clock = clock();
    let store = MemoryReplayStore::new();
    let layer = layer_with(|v| {
        v.max_age(Duration::from_secs(60))
            .clock_skew(Duration::from_secs(0))
            .clock(clock.clone())
    })
    .replay_store(store.clone());
    let addr = serve_axum(echo_app(layer)).await;
    let auth = bearer(BODY);
    let first = post(addr, Some(&auth), BODY).await;
    assert_eq!(first.status, StatusCode::OK);
    let jti = first.json()["jti"].as_str().unwrap().to_owned();
    let attempt = |now: u64| {
        let retention = Retention::new(NOW + 60, NOW);
        Attempt::new(ReplayKey::new(API_KEY, &jti), NOW, now, retention)
    };
    clock.advance(30);
    assert_eq!(
        post(addr, Some(&auth), BODY).await.error(),
        "replayed_token"
    );
    assert_eq!(
        store.lookup(&attempt(NOW + 30)).await,
        Ok(Lookup::Delivered { at: Some(NOW) })
    );
    // The last second the token is fresh (skew 0): still remembered.
    clock.advance(30);
    assert_eq!(
        post(addr, Some(&auth), BODY).await.error(),
        "replayed_token"
    );
    clock.advance(1);
    assert_eq!(post(addr, Some(&auth), BODY).await.error(), "stale_token");
    // The store no longer holds it as done: the entry expired with the token.
    assert_eq!(store.lookup(&attempt(NOW + 61)).await, Ok(Lookup::Unknown));
    assert!(matches!(
        store.reserve(attempt(NOW + 61)).await,
        Ok(Reservation::Reserved(_))
    ));
}

/// POSTs `body` to `path` on `addr` over `client` (kept alive between calls).
async fn post_to(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    addr: std::net::SocketAddr,
    path: &str,
    auth: &str,
) -> (StatusCode, String) {
    let req = Request::post(format!("http://{addr}{path}"))
        .header("authorization", auth)
        .body(Full::new(Bytes::from_static(BODY)))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("answered in time")
        .expect("request failed");
    let status = res.status();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let error = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, error)
}

#[tokio::test]
async fn two_route_layers_share_one_replay_window() {
    // As the README shows: a layer per route, each built on its own, with the default store.
    let secrets = || {
        vonage_secure_callbacks::Secrets::new().project(
            API_KEY,
            vonage_secure_callbacks::Secret::new(SECRET).unwrap(),
        )
    };
    let verifier = || vonage_secure_callbacks::CallbackVerifier::new(secrets()).clock(clock());
    let session = vonage_secure_callbacks::SecureCallbackLayer::new(verifier());
    let archive = vonage_secure_callbacks::SecureCallbackLayer::new(verifier());
    let app = Router::new()
        .route("/session", axum_post(echo).route_layer(session))
        .route("/archive", axum_post(echo).route_layer(archive));
    let addr = serve_axum(app).await;
    let client = client();
    let auth = bearer(BODY);
    assert_eq!(
        post_to(&client, addr, "/session", &auth).await.0,
        StatusCode::OK
    );
    assert_eq!(
        post_to(&client, addr, "/archive", &auth).await,
        (StatusCode::CONFLICT, "replayed_token".to_owned())
    );
    // And the other way round.
    let other = bearer(BODY);
    assert_eq!(
        post_to(&client, addr, "/archive", &other).await.0,
        StatusCode::OK
    );
    assert_eq!(
        post_to(&client, addr, "/session", &other).await.1,
        "replayed_token"
    );
}

/// Sends the head of a POST declaring `len` body bytes and only the first 5 of them, then waits
/// at most `wait` for a status line.
async fn dripping_post(addr: std::net::SocketAddr, auth: &str, wait: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /vonage/callback HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        BODY.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&BODY[..5]).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(wait, stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn a_delivered_callback_is_refused_before_its_body_is_read() {
    let addr = serve_axum(echo_app(layer())).await;
    let auth = bearer(BODY);
    // Not delivered yet: the layer waits for the body that never completes.
    assert_eq!(
        dripping_post(addr, &auth, Duration::from_millis(300)).await,
        None,
        "a fresh callback waits for its body"
    );
    assert_eq!(post(addr, Some(&auth), BODY).await.status, StatusCode::OK);
    // Delivered: the replay is answered at once, its body never awaited.
    let started = std::time::Instant::now();
    let reply = dripping_post(addr, &auth, Duration::from_secs(5))
        .await
        .expect("answered without the body");
    assert!(reply.starts_with("HTTP/1.1 409"), "{reply}");
    assert!(reply.contains("replayed_token"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_small_store_under_sustained_load_accepts_every_fresh_callback_and_no_replay() {
    // 20 000 distinct callbacks, one a second of fake time (5.5 h), through a store of 1 000:
    // it fills after ~17 min and then slides its floor. Replays are mixed in, and every
    // callback is replayed at the end.
    const CAPACITY: usize = 1_000;
    const CALLBACKS: u64 = 20_000;
    let clock = clock();
    let store = MemoryReplayStore::with_capacity(CAPACITY);
    let layer = layer_with(|v| v.clock(clock.clone())).replay_store(store.clone());
    let addr = serve_axum(echo_app(layer)).await;
    let client = client();
    let mut sent = Vec::with_capacity(CALLBACKS as usize);
    let mut refused = std::collections::HashMap::<String, usize>::new();
    for i in 0..CALLBACKS {
        let now = NOW + i;
        clock.set(now);
        let auth = format!(
            "Bearer {}",
            token_at_now(BODY, |c| {
                c.insert("iat".into(), serde_json::json!(now));
            })
        );
        let (status, error) = post_to(&client, addr, "/cb", &auth).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "fresh callback {i} refused: {error}"
        );
        assert!(store.len() <= CAPACITY, "{} > capacity", store.len());
        sent.push(auth);
        if i % 10 == 9 {
            // A replay of an earlier one: recent, or long gone from the store.
            let earlier = &sent[(i as usize * 7919) % sent.len()];
            let (status, error) = post_to(&client, addr, "/cb", earlier).await;
            assert_ne!(status, StatusCode::OK, "replay accepted at {i}");
            *refused.entry(error).or_default() += 1;
        }
    }
    for (i, auth) in sent.iter().enumerate() {
        let (status, error) = post_to(&client, addr, "/cb", auth).await;
        assert_ne!(status, StatusCode::OK, "final replay of {i} accepted");
        *refused.entry(error).or_default() += 1;
    }
    let refused_total: usize = refused.values().sum();
    assert_eq!(refused_total, CALLBACKS as usize + CALLBACKS as usize / 10);
    assert!(
        refused["replayed_token"] > 0 && refused["replay_window_exceeded"] > 0,
        "{refused:?}"
    );
    assert_eq!(refused.len(), 2, "{refused:?}");
    let window = store.effective_window().expect("the store filled up");
    // 1 000 places at one callback a second: a window of 15-17 minutes.
    assert!((900..=1_000).contains(&window.as_secs()), "{window:?}");
}

/// The server's clock jumps a day ahead (a bad NTP server, a restored VM), the store drops what
/// now looks expired, and the clock is put right. The verifier finds those tokens fresh again;
/// the store must not. Delivers 16 callbacks, jumps, delivers `ahead` callbacks at the wrong
/// time (pausing `pause` after each, for a store that prunes as it goes), comes back; every
/// replay must be refused `replay_window_exceeded` and a fresh callback accepted. Shared by
/// every store's test.
pub async fn a_clock_jump_lets_no_replay_through<R: ReplayStore>(
    store: R,
    ahead: usize,
    pause: Duration,
) {
    let clock = clock();
    let layer = layer_with(|v| v.clock(clock.clone())).replay_store(store);
    let addr = serve_axum(echo_app(layer)).await;
    let signed_at = |iat: u64| {
        format!(
            "Bearer {}",
            token_at_now(BODY, |c| {
                c.insert("iat".into(), serde_json::json!(iat));
            })
        )
    };
    let delivered: Vec<String> = (0..16).map(|i| signed_at(NOW + i)).collect();
    for auth in &delivered {
        assert_eq!(post(addr, Some(auth), BODY).await.status, StatusCode::OK);
    }
    let later = NOW + 86_400 + 300 + 60;
    clock.set(later);
    // While it is wrong, those tokens are stale: retried by Vonage, not lost.
    let during = post(addr, Some(&delivered[0]), BODY).await;
    assert_eq!(
        (during.status, during.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "stale_token".to_owned())
    );
    for _ in 0..ahead {
        assert_eq!(
            post(addr, Some(&signed_at(later)), BODY).await.status,
            StatusCode::OK
        );
        tokio::time::sleep(pause).await;
    }
    clock.set(NOW + 100);
    for (i, auth) in delivered.iter().enumerate() {
        let reply = post(addr, Some(auth), BODY).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::CONFLICT, "replay_window_exceeded".to_owned()),
            "replay {i} after the clock came back"
        );
    }
    assert_eq!(
        post(addr, Some(&signed_at(NOW + 100)), BODY).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_clock_that_jumps_ahead_and_back_lets_no_replay_through() {
    // A full store of 16: the one callback at the wrong time makes it drop the 16 as expired.
    let store = MemoryReplayStore::with_capacity(16);
    a_clock_jump_lets_no_replay_through(store.clone(), 1, Duration::ZERO).await;
    assert!(store.len() < 16, "the expired ones were dropped");
    // The store says how far back it now vouches: from the newest token it dropped (issued at
    // NOW + 15) to now.
    assert_eq!(store.effective_window(), Some(Duration::from_secs(85)));
}

#[tokio::test]
async fn a_hung_handler_loses_its_reservation_after_the_in_flight_ttl() {
    // The first delivery's handler never answers; after the in-flight TTL (10 s of fake time)
    // Vonage's retry is reserved and handled, and the hung one's slot is not held for ever.
    let clock = clock();
    let store = MemoryReplayStore::builder()
        .in_flight_ttl(Duration::from_secs(10))
        .build();
    let (app, calls) = answering_by_call(|n| async move {
        if n == 0 {
            std::future::pending::<()>().await;
        }
        StatusCode::OK
    });
    let app = app.layer(layer_with(|v| v.clock(clock.clone())).replay_store(store.clone()));
    let addr = serve_axum(app).await;
    let auth = bearer(BODY);
    let hung = tokio::spawn({
        let auth = auth.clone();
        async move { post(addr, Some(&auth), BODY).await }
    });
    // Bounded wait for the first handler to be running.
    for _ in 0..200 {
        if calls.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    clock.advance(9);
    assert_eq!(
        post(addr, Some(&auth), BODY).await.error(),
        "duplicate_in_flight"
    );
    clock.advance(1);
    assert_eq!(post(addr, Some(&auth), BODY).await.status, StatusCode::OK);
    assert_eq!(
        post(addr, Some(&auth), BODY).await.error(),
        "replayed_token"
    );
    assert_eq!(store.len(), 1);
    hung.abort();
}
