//! Chaos run: two instances share one Redis (append-only, fsync always) while Redis is killed
//! and restarted several times; a client that behaves like Vonage delivers distinct callbacks,
//! retrying every 5xx with backoff and never giving up, and replays delivered ones all along.
//! At the end every callback was answered 2xx exactly once and no replay was accepted
//! (feature `redis`).
//!
//! `CHAOS_CALLBACKS` (default 600) and `CHAOS_KILLS` (default 5) make it longer:
//! `CHAOS_CALLBACKS=20000 CHAOS_KILLS=30 cargo test --features redis --test it chaos -- --nocapture`.
#![cfg(feature = "redis")]

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::redis_servers::RedisServer;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use vonage_secure_callbacks::replay::RedisReplayStore;

const BODY: &[u8] = br#"{"sessionId":"1_MX4","event":"streamDestroyed"}"#;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the client saw for each callback.
#[derive(Default, Debug)]
struct Ledger {
    accepted: HashMap<String, usize>,
    replays_sent: usize,
    replays_refused: usize,
    /// Deliveries answered 5xx (or not at all) and retried.
    retried: usize,
}

async fn send_once(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    addr: std::net::SocketAddr,
    auth: &str,
) -> Option<(StatusCode, String)> {
    let req = Request::post(format!("http://{addr}/cb"))
        .header("authorization", auth)
        .body(Full::new(Bytes::from_static(BODY)))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .ok()?
        .ok()?;
    let status = res.status();
    let body = res.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_survive_redis_restarts_without_losing_or_replaying_a_callback() {
    let callbacks = knob("CHAOS_CALLBACKS", 600);
    let kills = knob("CHAOS_KILLS", 5);
    let server = Arc::new(Mutex::new(RedisServer::start_persistent()));
    let url = server.lock().unwrap().url();
    let prefix = format!("chaos-{}", vonage_secure_callbacks::test_util::fresh_jti());
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    let mut instances = Vec::new();
    // How often each instance's handler ran, per jti.
    let mut handled = Vec::new();
    for _ in 0..2 {
        let store = RedisReplayStore::builder(&url)
            .timeout(Duration::from_millis(300))
            .prefix(&prefix)
            .in_flight_ttl(Duration::from_secs(3))
            .connect()
            .await
            .unwrap();
        let (app, runs) = counting_app(layer().replay_store(store), StatusCode::NO_CONTENT);
        handled.push(runs);
        instances.push(serve_axum(app).await);
    }

    let tokens: Arc<Vec<String>> = Arc::new(
        (0..callbacks)
            .map(|_| format!("Bearer {}", token_at_now(BODY, |_| {})))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let delivered: Arc<Mutex<Vec<usize>>> = Arc::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);

    // Redis dies (SIGKILL) and comes back from its append-only file, `kills` times.
    let chaos = {
        let server = server.clone();
        tokio::spawn(async move {
            for _ in 0..kills {
                tokio::time::sleep(Duration::from_millis(400)).await;
                server.lock().unwrap().kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                tokio::task::block_in_place(|| server.lock().unwrap().restart());
            }
        })
    };

    // Spread the deliveries over the time the restarts take.
    let pace = Duration::from_millis(700) * (kills as u32) * 8 / (callbacks.max(1) as u32);
    // Vonage: 8 senders, each callback retried on 5xx or a lost answer, with backoff.
    let senders: Vec<_> = (0..8)
        .map(|worker| {
            let (tokens, next, delivered, ledger) = (
                tokens.clone(),
                next.clone(),
                delivered.clone(),
                ledger.clone(),
            );
            let instances = instances.clone();
            tokio::spawn(async move {
                let client = client();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tokens.len() {
                        return;
                    }
                    let mut backoff = Duration::from_millis(10);
                    let mut attempt = worker + i;
                    loop {
                        assert!(Instant::now() < deadline, "callback {i} given up on");
                        let addr = instances[attempt % 2];
                        attempt += 1;
                        match send_once(&client, addr, &tokens[i]).await {
                            Some((status, _)) if status.is_success() => {
                                let jti = claim_of(&tokens[i][7..], "jti").unwrap();
                                *ledger.lock().unwrap().accepted.entry(jti).or_default() += 1;
                                delivered.lock().unwrap().push(i);
                                break;
                            }
                            Some((status, body)) if status.is_client_error() => {
                                panic!("callback {i} refused for good: {status} {body}")
                            }
                            _ => {
                                ledger.lock().unwrap().retried += 1;
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_millis(200));
                            }
                        }
                    }
                    // Pace the run so that it spans the restarts.
                    tokio::time::sleep(pace).await;
                }
            })
        })
        .collect();

    // An attacker replaying delivered callbacks all along, to both instances.
    let replayer = {
        let (tokens, delivered, ledger) = (tokens.clone(), delivered.clone(), ledger.clone());
        let instances = instances.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let client = client();
            let mut n = 0usize;
            while next.load(Ordering::Relaxed) < tokens.len() + 8 && Instant::now() < deadline {
                let pick = {
                    let d = delivered.lock().unwrap();
                    (!d.is_empty()).then(|| d[(n * 7919) % d.len()])
                };
                n += 1;
                let Some(i) = pick else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                if let Some((status, body)) = send_once(&client, instances[n % 2], &tokens[i]).await
                {
                    assert!(!status.is_success(), "replay of callback {i} accepted");
                    let mut l = ledger.lock().unwrap();
                    l.replays_sent += 1;
                    if status == StatusCode::CONFLICT {
                        assert!(body.contains("replayed_token"), "{body}");
                        l.replays_refused += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    for s in senders {
        s.await.unwrap();
    }
    chaos.await.unwrap();
    replayer.await.unwrap();

    // Let background settles finish, then replay every callback once more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let client = client();
    let mut ledger_final = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        // The first command after a restart may find a dead connection (503, retried).
        loop {
            assert!(
                Instant::now() < deadline,
                "final replay of {i} never answered"
            );
            match send_once(&client, instances[i % 2], token).await {
                Some((status, body)) if status != StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(status, StatusCode::CONFLICT, "final replay of {i}: {body}");
                    ledger_final.push(status);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    let ledger = ledger.lock().unwrap();
    assert_eq!(
        ledger.accepted.len(),
        callbacks,
        "every callback answered 2xx"
    );
    assert!(ledger.accepted.values().all(|&n| n == 1), "exactly once");
    let mut runs: HashMap<String, usize> = HashMap::new();
    for instance in &handled {
        for (jti, n) in instance.lock().unwrap().iter() {
            *runs.entry(jti.clone()).or_default() += n;
        }
    }
    assert_eq!(runs.len(), callbacks);
    assert!(
        runs.values().all(|&n| n == 1),
        "the handler acted once per callback, across both instances"
    );
    assert!(ledger.replays_refused > 0, "{ledger:?}");
    assert!(
        ledger.retried > 0,
        "Redis restarts never hit a delivery: {ledger:?}"
    );
    println!(
        "chaos: {callbacks} callbacks, {kills} Redis kills, {} deliveries retried after a 5xx, \
         {} replays during the run ({} answered 409, the rest 503 while Redis was down), \
         {} final replays all 409, in {:?}",
        ledger.retried,
        ledger.replays_sent,
        ledger.replays_refused,
        ledger_final.len(),
        started.elapsed()
    );
}
