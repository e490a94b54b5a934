//! The PostgreSQL store against real, throwaway PostgreSQL clusters (feature `postgres`): its
//! contract, two instances on one table, the server killed and restarted under load, a
//! statement that times out, a pool with no connection free, pruning, and the table's size.
#![cfg(feature = "postgres")]

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres_server::PostgresServer;
use common::*;
use http::StatusCode;
use vonage_secure_callbacks::replay::{
    Attempt, Lookup, Outcome, PostgresReplayStore, ReplayKey, ReplayStore, Reservation, Retention,
};

async fn store(server: &PostgresServer) -> PostgresReplayStore {
    PostgresReplayStore::builder(&server.url())
        .timeout(Duration::from_millis(800))
        .in_flight_ttl(Duration::from_secs(2))
        .connect()
        .await
        .unwrap()
}

fn attempt(jti: &str, now: u64) -> Attempt {
    Attempt::new(
        ReplayKey::new(API_KEY, jti),
        now,
        now,
        Retention::new(now + 3600, now),
    )
}

#[tokio::test]
async fn the_store_keeps_its_contract_on_a_real_server() {
    let server = PostgresServer::start();
    let s = store(&server).await;
    let t = NOW;
    assert_eq!(s.lookup(&attempt("a", t)).await.unwrap(), Lookup::Unknown);
    let Reservation::Reserved(lease) = s.reserve(attempt("a", t)).await.unwrap() else {
        panic!("a new jti is reserved")
    };
    assert_eq!(
        s.reserve(attempt("a", t)).await.unwrap(),
        Reservation::InFlight
    );
    // Released by its owner: free again.
    s.settle(&lease, Outcome::NotDelivered).await.unwrap();
    let Reservation::Reserved(lease) = s.reserve(attempt("a", t)).await.unwrap() else {
        panic!("released, so free")
    };
    s.settle(&lease, Outcome::Delivered).await.unwrap();
    assert_eq!(
        s.lookup(&attempt("a", t + 10)).await.unwrap(),
        Lookup::Delivered { at: Some(t) }
    );
    assert_eq!(
        s.reserve(attempt("a", t + 10)).await.unwrap(),
        Reservation::AlreadyDone { at: Some(t) }
    );
    // A late release of the delivered one frees nothing.
    s.settle(&lease, Outcome::NotDelivered).await.unwrap();
    assert_eq!(
        s.lookup(&attempt("a", t + 20)).await.unwrap(),
        Lookup::Delivered { at: Some(t) }
    );

    // A reservation whose request died is taken over after the in-flight TTL (2 s), and the
    // first owner's late release cannot free the new one.
    let Reservation::Reserved(first) = s.reserve(attempt("b", t)).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        s.reserve(attempt("b", t + 1)).await.unwrap(),
        Reservation::InFlight
    );
    let Reservation::Reserved(second) = s.reserve(attempt("b", t + 3)).await.unwrap() else {
        panic!("taken over after the TTL")
    };
    s.settle(&first, Outcome::NotDelivered).await.unwrap();
    assert_eq!(
        s.reserve(attempt("b", t + 3)).await.unwrap(),
        Reservation::InFlight,
        "the late release freed nothing"
    );
    s.settle(&second, Outcome::Delivered).await.unwrap();

    // A delivery past its retention is no longer vouched for (its token is stale by then).
    assert_eq!(
        s.lookup(&attempt("a", t + 3601)).await.unwrap(),
        Lookup::Unknown
    );
}

#[tokio::test]
async fn expired_rows_are_pruned_in_batches_and_the_table_stays_small() {
    let server = PostgresServer::start();
    let s = store(&server).await;
    let n = 5000;
    for i in 0..n {
        let Reservation::Reserved(lease) =
            s.reserve(attempt(&format!("{i:036}"), NOW)).await.unwrap()
        else {
            panic!()
        };
        s.settle(&lease, Outcome::Delivered).await.unwrap();
    }
    let size: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('vonage_replay')")
        .fetch_one(s.pool())
        .await
        .unwrap();
    println!(
        "postgres table: {} bytes per jti over {n} delivered 36-character jtis (table, index, key)",
        size / n
    );
    assert!(size / n < 400, "{} bytes per jti", size / n);
    // Nothing has expired yet.
    assert_eq!(s.prune().await.unwrap(), 0);
    // An hour and more later (the clock the callbacks bring), every row has.
    let _ = s.reserve(attempt("late", NOW + 3601)).await.unwrap();
    assert_eq!(s.prune().await.unwrap(), n as u64);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM vonage_replay")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(left, 1, "only the fresh reservation");
}

#[tokio::test]
async fn two_instances_on_one_table_accept_a_callback_once() {
    let server = PostgresServer::start();
    let a = serve_axum(echo_app(layer().replay_store(store(&server).await))).await;
    let b = serve_axum(echo_app(layer().replay_store(store(&server).await))).await;
    let auth = bearer(b"{}");
    assert_eq!(post(a, Some(&auth), "{}").await.status, StatusCode::OK);
    let replay = post(b, Some(&auth), "{}").await;
    assert_eq!(replay.error(), "replayed_token", "{replay:?}");

    // The same fresh callback to both at once: one of them runs it.
    for _ in 0..20 {
        let auth = bearer(b"{}");
        let (x, y) = tokio::join!(post(a, Some(&auth), "{}"), post(b, Some(&auth), "{}"));
        let ok = [&x, &y]
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(ok, 1, "{x:?} {y:?}");
        for other in [&x, &y].iter().filter(|r| r.status != StatusCode::OK) {
            assert!(
                ["duplicate_in_flight", "replayed_token"].contains(&other.error().as_str()),
                "{other:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_statement_that_times_out_is_a_503_and_the_store_recovers() {
    let server = PostgresServer::start();
    let s = store(&server).await;
    let addr = serve_axum(echo_app(layer().replay_store(s.clone()))).await;
    // Another session holds the table: every statement of the store waits on it.
    let mut blocker = s.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE vonage_replay IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let refused = post(addr, Some(&bearer(b"{}")), "{}").await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(refused.error(), "replay_store_unavailable");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded wait");
    blocker.rollback().await.unwrap();
    assert_eq!(
        post(addr, Some(&bearer(b"{}")), "{}").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_pool_with_no_connection_free_is_a_503_after_a_bounded_wait() {
    let server = PostgresServer::start();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .unwrap();
    let s = PostgresReplayStore::from_pool(pool.clone())
        .timeout(Duration::from_millis(600))
        .connect()
        .await
        .unwrap();
    let addr = serve_axum(echo_app(layer().replay_store(s))).await;
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let refused = post(addr, Some(&bearer(b"{}")), "{}").await;
    assert_eq!(refused.error(), "replay_store_unavailable", "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(held);
    assert_eq!(
        post(addr, Some(&bearer(b"{}")), "{}").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unreachable_database_stops_the_store_at_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PostgresReplayStore::builder(&format!("postgres://postgres@127.0.0.1:{port}/x"))
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("PostgreSQL") || err.contains("pool"), "{err}");
    // The password never appears in what it says.
    let err = PostgresReplayStore::builder(&format!(
        "postgres://postgres:hunter2-secret@127.0.0.1:{port}/x"
    ))
    .timeout(Duration::from_millis(500))
    .connect()
    .await
    .unwrap_err()
    .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}

/// What the client saw, per callback.
#[derive(Default, Debug)]
struct Ledger {
    accepted: HashMap<String, usize>,
    unavailable: usize,
    replays_refused: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_under_load_it_loses_nothing_and_lets_no_replay_through() {
    let mut server = PostgresServer::start();
    let s = store(&server).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (app, handled) = counting_app(layer().replay_store(s), StatusCode::OK);
    let addr = serve_axum(app).await;

    // Vonage-like senders: each callback until a 2xx or a 4xx, retrying a 5xx (or no answer)
    // every 50 ms for up to 30 s; every delivered one is replayed once afterwards.
    let callbacks = 800;
    let senders: Vec<_> = (0..4)
        .map(|w| {
            let ledger = Arc::clone(&ledger);
            tokio::spawn(async move {
                for _ in 0..callbacks / 4 {
                    let token = token_at_now(b"{}", |_| {});
                    let jti = claim_of(&token, "jti").unwrap();
                    let auth = format!("Bearer {token}");
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        let reply = tokio::time::timeout(
                            Duration::from_secs(5),
                            post(addr, Some(&auth), "{}"),
                        )
                        .await;
                        match reply {
                            Ok(r) if r.status.is_success() => {
                                *ledger
                                    .lock()
                                    .unwrap()
                                    .accepted
                                    .entry(jti.clone())
                                    .or_default() += 1;
                                break;
                            }
                            Ok(r) if r.status.is_client_error() => {
                                panic!("sender {w}: a fresh callback refused: {r:?}")
                            }
                            _ => ledger.lock().unwrap().unavailable += 1,
                        }
                        assert!(Instant::now() < deadline, "a callback was never accepted");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let replay = post(addr, Some(&auth), "{}").await;
                    match replay.status {
                        StatusCode::CONFLICT => ledger.lock().unwrap().replays_refused += 1,
                        s if s.is_server_error() => {}
                        _ => panic!("a replay got {replay:?}"),
                    }
                }
            })
        })
        .collect();

    // Two crashes while they run.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        server.kill();
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.start_again();
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let ledger = ledger.lock().unwrap();
    println!(
        "postgres outage: {} callbacks, {} 5xx answers retried, {} replays refused",
        ledger.accepted.len(),
        ledger.unavailable,
        ledger.replays_refused
    );
    assert_eq!(ledger.accepted.len(), callbacks, "every callback delivered");
    assert!(
        ledger.accepted.values().all(|&n| n == 1),
        "each accepted once"
    );
    let handled = handled.lock().unwrap();
    assert_eq!(handled.len(), callbacks);
    assert!(
        handled.values().all(|&n| n == 1),
        "each handled once: {} were not",
        handled.values().filter(|&&n| n != 1).count()
    );
    assert!(ledger.unavailable > 0, "the outages were seen (503)");
    assert!(
        ledger.replays_refused > callbacks / 2,
        "replays were refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_mark_that_fails_is_retried_until_postgres_is_back() {
    let mut server = PostgresServer::start();
    // The in-flight TTL bounds the background retries: long enough for the restart.
    let s = PostgresReplayStore::builder(&server.url())
        .timeout(Duration::from_millis(500))
        .in_flight_ttl(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    // The handler holds its answer until the test has killed the server.
    let (killed_tx, killed_rx) = tokio::sync::watch::channel(false);
    let app = axum::Router::new()
        .route(
            "/{*p}",
            axum::routing::post(move || {
                let mut killed = killed_rx.clone();
                async move {
                    let _ = killed.wait_for(|k| *k).await;
                    StatusCode::OK
                }
            }),
        )
        .layer(layer().replay_store(s.clone()));
    let addr = serve_axum(app).await;
    let auth = bearer(b"{}");
    let first = tokio::spawn({
        let auth = auth.clone();
        async move { post(addr, Some(&auth), "{}").await }
    });
    // Reserved (the handler runs), then the database goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    killed_tx.send(true).unwrap();
    assert_eq!(
        first.await.unwrap().status,
        StatusCode::OK,
        "the handler's answer stands"
    );
    // While it is down, the replay cannot be checked: 503, never accepted.
    let during = post(addr, Some(&auth), "{}").await;
    assert_eq!(during.status, StatusCode::SERVICE_UNAVAILABLE, "{during:?}");
    server.start_again();
    // The mark lands once the server is back (retried every second at most).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let replay = post(addr, Some(&auth), "{}").await;
        if replay.error() == "replayed_token" {
            break;
        }
        assert!(
            replay.status == StatusCode::SERVICE_UNAVAILABLE,
            "never accepted twice: {replay:?}"
        );
        assert!(Instant::now() < deadline, "the mark never landed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// TLS to PostgreSQL (feature `postgres-tls`): the server's certificate is checked against the
/// CA named in the URL; a server that takes only TLS refuses a plain connection; another CA
/// fails the connect, naming TLS, never falling back to plain text.
#[cfg(feature = "postgres-tls")]
#[tokio::test]
async fn over_tls_the_server_is_verified_and_plain_text_is_never_used() {
    use common::certificates::TestCertificates;
    let certificates = TestCertificates::make();
    let server = PostgresServer::start_tls(&certificates);
    let url = |ca: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
            server.port
        )
    };
    let s = PostgresReplayStore::builder(&url(&certificates.path("ca.pem")))
        .timeout(Duration::from_millis(1500))
        .connect()
        .await
        .unwrap();
    let addr = serve_axum(echo_app(layer().replay_store(s))).await;
    let auth = bearer(b"{}");
    assert_eq!(post(addr, Some(&auth), "{}").await.status, StatusCode::OK);
    assert_eq!(
        post(addr, Some(&auth), "{}").await.error(),
        "replayed_token"
    );

    let plain = PostgresReplayStore::builder(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        server.port
    ))
    .timeout(Duration::from_millis(1500))
    .connect()
    .await;
    assert!(plain.is_err(), "the server takes TLS only");

    let stranger = TestCertificates::make();
    let err = PostgresReplayStore::builder(&url(&stranger.path("ca.pem")))
        .timeout(Duration::from_millis(1500))
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "names the certificate: {err}");
}

/// Two `callback_server` processes (two workers of one deployment) with
/// `REPLAY_STORE=postgres://…`: what one delivered, the other refuses as a replay; the URL's
/// password is not printed.
#[test]
fn two_callback_server_processes_share_one_window_in_postgres() {
    use common::example::{address, start_named};
    let server = PostgresServer::start();
    let url = server.url().replace("postgres@", "postgres:not-printed@");
    let env = [
        ("VONAGE_API_KEY", API_KEY),
        ("VONAGE_SIGNATURE_SECRET", SECRET),
        ("REPLAY_STORE", url.as_str()),
    ];
    let (_a, a_lines) = start_named("callback_server", &env);
    let (_b, b_lines) = start_named("callback_server", &env);
    let said = a_lines.join("\n");
    assert!(
        said.contains("replay store: PostgreSQL at 127.0.0.1:"),
        "{said}"
    );
    assert!(!said.contains("not-printed"), "{said}");
    let (a, b) = (address(&a_lines), address(&b_lines));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let auth = signer().authorization(b"{}");
        let post_to = |addr: &str| {
            let request = http::Request::post(format!("http://{addr}/vonage/session"))
                .header("authorization", auth.as_str())
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                .unwrap();
            common::send(request)
        };
        assert_eq!(post_to(&a).await.status, StatusCode::OK);
        let replay = post_to(&b).await;
        assert_eq!(replay.error(), "replayed_token", "{replay:?}");
    });
}
