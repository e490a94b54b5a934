//! `examples/exactly_once` (one row per callback, written with the delivery mark in one
//! transaction) under the faults that make at-least-once delivery run a handler twice: the
//! process killed after the commit and before the answer, the process killed before the commit,
//! the handler's database connection killed before the commit. A Vonage-like client retries
//! each callback until it gets a final answer; then the rows are counted: exactly one per
//! callback, every time (feature `postgres`).
#![cfg(feature = "postgres")]

use crate::common;

use std::time::{Duration, Instant};

use common::example::{address, start_named, KillOnDrop};
use common::postgres_server::PostgresServer;
use http::StatusCode;
use vonage_secure_callbacks::test_util::CallbackSigner;

const API_KEY: &str = "exactly-once-key";
const SECRET: &str = "exactly-once-project-signature-secret";
const BODY: &[u8] = br#"{"sessionId":"2_MX4","event":"archiveStatus","status":"uploaded"}"#;

/// The example on `server`'s database, with `pause` (or none) and a 2 s in-flight TTL.
fn example(server: &PostgresServer, pause: Option<&str>) -> (KillOnDrop, String) {
    let url = server.url();
    let mut env = vec![
        ("DATABASE_URL", url.as_str()),
        ("VONAGE_API_KEY", API_KEY),
        ("VONAGE_SIGNATURE_SECRET", SECRET),
        ("REPLAY_IN_FLIGHT_TTL_SECS", "2"),
    ];
    if let Some(pause) = pause {
        env.push(("EXACTLY_ONCE_PAUSE", pause));
    }
    let (child, lines) = start_named("exactly_once", &env);
    let addr = address(&lines);
    (child, addr)
}

/// One delivery attempt: the status, or `None` when the connection died or nothing came back
/// within 10 s.
async fn deliver(addr: &str, auth: &str) -> Option<StatusCode> {
    let request = http::Request::post(format!("http://{addr}/vonage/archive"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(BODY)))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let answer = tokio::time::timeout(Duration::from_secs(10), client.request(request)).await;
    Some(answer.ok()?.ok()?.status())
}

/// Vonage's behaviour: retry a 5xx or no answer (every 200 ms here, for up to 30 s), stop at
/// a 2xx or 4xx. Returns the final status.
async fn retry_until_final(addr: &str, auth: &str) -> StatusCode {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = deliver(addr, auth).await {
            if !status.is_server_error() {
                return status;
            }
        }
        assert!(Instant::now() < deadline, "never a final answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn rows_for(pool: &sqlx::PgPool, jti: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM callback_effects WHERE jti = $1")
        .bind(jti)
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// Waits (up to 10 s) until `probe` holds.
async fn until<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The handler's transaction, open and waiting (it has written its row and the mark).
async fn a_transaction_is_open(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(0)
        > 0
}

/// The first delivery, in flight while the test strikes; its answer (or `None`) later.
fn first_delivery(addr: &str, auth: &str) -> tokio::task::JoinHandle<Option<StatusCode>> {
    let (addr, auth) = (addr.to_owned(), auth.to_owned());
    tokio::spawn(async move { deliver(&addr, &auth).await })
}

fn signed() -> (String, String) {
    let token = CallbackSigner::new(API_KEY, SECRET).token(BODY);
    let jti = common::claim_of(&token, "jti").unwrap();
    (format!("Bearer {token}"), jti)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_commit_and_before_the_answer_the_retry_is_a_replay_and_one_row_stays() {
    let server = PostgresServer::start();
    let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
    for round in 0..3 {
        let (mut process, addr) = example(&server, Some("after-commit:5000"));
        let (auth, jti) = signed();
        let first = first_delivery(&addr, &auth);
        until("the row committed", || async {
            rows_for(&pool, &jti).await == 1
        })
        .await;
        process.0.kill().unwrap();
        let _ = process.0.wait();
        assert_eq!(first.await.unwrap(), None, "no answer came: Vonage retries");

        let (_process, addr) = example(&server, None);
        let last = retry_until_final(&addr, &auth).await;
        assert_eq!(
            last,
            StatusCode::CONFLICT,
            "round {round}: the retry is a replay"
        );
        assert_eq!(rows_for(&pool, &jti).await, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_commit_the_retry_runs_it_once_more_and_one_row_stays() {
    let server = PostgresServer::start();
    let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
    for round in 0..3 {
        let (mut process, addr) = example(&server, Some("before-commit:5000"));
        let (auth, jti) = signed();
        let first = first_delivery(&addr, &auth);
        until("the handler's transaction is open", || {
            a_transaction_is_open(&pool)
        })
        .await;
        process.0.kill().unwrap();
        let _ = process.0.wait();
        assert_eq!(first.await.unwrap(), None);
        assert_eq!(
            rows_for(&pool, &jti).await,
            0,
            "rolled back with the process"
        );

        // The dead request's reservation holds the jti for the in-flight TTL (2 s: 503s),
        // then the retry runs the handler, once.
        let (_process, addr) = example(&server, None);
        assert_eq!(retry_until_final(&addr, &auth).await, StatusCode::OK);
        assert_eq!(rows_for(&pool, &jti).await, 1, "round {round}");
        assert_eq!(deliver(&addr, &auth).await, Some(StatusCode::CONFLICT));
        assert_eq!(rows_for(&pool, &jti).await, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_connection_killed_before_the_commit_the_retry_writes_one_row() {
    let server = PostgresServer::start();
    let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
    let (_process, addr) = example(&server, Some("before-commit:1500"));
    for round in 0..3 {
        let (auth, jti) = signed();
        let first = first_delivery(&addr, &auth);
        until("the handler's transaction is open", || {
            a_transaction_is_open(&pool)
        })
        .await;
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE state = 'idle in transaction') AS t",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(killed, 1);
        // The commit fails: 503, nothing written, the reservation released.
        assert_eq!(
            first.await.unwrap(),
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "round {round}"
        );
        assert_eq!(rows_for(&pool, &jti).await, 0);
        assert_eq!(retry_until_final(&addr, &auth).await, StatusCode::OK);
        assert_eq!(rows_for(&pool, &jti).await, 1, "round {round}");
        assert_eq!(deliver(&addr, &auth).await, Some(StatusCode::CONFLICT));
    }
}
