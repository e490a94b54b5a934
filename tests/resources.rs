//! Resource bounds and faults through real servers on loopback: oversized bodies from many
//! clients at once (peak memory measured), slow bodies, an inner service that errors, panics or
//! is not ready, and a burst of 20 000 valid callbacks.
//!
//! Memory is read from `/proc/self/status` of this test process, so these tests run one at a
//! time (a mutex) and each measures its own growth. The peak with 64 clients is the limit
//! times the clients (our buffers) plus hyper's per-connection read buffers and the runtime.

#[path = "it/common/mod.rs"]
mod common;

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use vonage_secure_callbacks::{MemoryReplayStore, VerifiedBody};

/// One test at a time: they measure this process's memory and load the two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A kernel memory figure of this process, in bytes (`VmHWM` peak RSS, `VmRSS` current).
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Resets the peak-RSS mark to the current RSS (Linux: writing 5 to `clear_refs`).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

const LIMIT: usize = 256 * 1024;
const CLIENTS: usize = 64;
static CHUNK: [u8; 16 * 1024] = [b'x'; 16 * 1024];

/// Sends a request announcing (or streaming) ten times the limit, reads the answer, and returns
/// its status line. The body is written from one static chunk: the client holds no copy.
async fn oversized(addr: std::net::SocketAddr, chunked: bool) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let total = 10 * LIMIT;
    let length = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {total}")
    };
    let head = format!(
        "POST /x HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\n{length}\r\n\r\n",
        bearer(b"irrelevant: the body is refused first")
    );
    let (mut read, mut write) = stream.split();
    let writer = async {
        write.write_all(head.as_bytes()).await?;
        let mut sent = 0;
        while sent < total {
            if chunked {
                write
                    .write_all(format!("{:x}\r\n", CHUNK.len()).as_bytes())
                    .await?;
            }
            write.write_all(&CHUNK).await?;
            if chunked {
                write.write_all(b"\r\n").await?;
            }
            sent += CHUNK.len();
        }
        if chunked {
            write.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let reader = async {
        let mut answer = vec![0u8; 512];
        let mut n = 0;
        while n < 12 {
            match read.read(&mut answer[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        String::from_utf8_lossy(&answer[..n]).into_owned()
    };
    // The server may answer and close before the whole body is written: a write error is
    // expected then; the answer is what counts.
    let (_, answer) = tokio::join!(writer, reader);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_oversized_bodies_get_413_and_memory_stays_bounded() {
    let _serial = SERIAL.lock().await;
    let addr = serve_axum(echo_app(layer_with(|v| v.body_limit(LIMIT)))).await;
    // Warm up: one accepted callback, so that lazily made state exists before measuring.
    assert_eq!(
        post(addr, Some(&bearer(b"{}")), "{}").await.status,
        StatusCode::OK
    );
    let before = proc_status_bytes("VmRSS:");
    reset_peak();

    for chunked in [false, true] {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| tokio::spawn(oversized(addr, chunked)))
            .collect();
        for task in tasks {
            let answer = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap();
            assert!(
                answer.starts_with("HTTP/1.1 413"),
                "chunked={chunked}: {answer:?}"
            );
        }
    }
    let grown = proc_status_bytes("VmHWM:").saturating_sub(before);
    let bound = (LIMIT * CLIENTS) as u64 + 32 * 1024 * 1024;
    println!(
        "peak RSS growth with {CLIENTS} clients sending 10x a {} KiB limit: {:.1} MiB (bound {:.1} MiB)",
        LIMIT / 1024,
        grown as f64 / 1048576.0,
        bound as f64 / 1048576.0
    );
    assert!(grown <= bound, "peak RSS grew by {grown} bytes");
}

#[tokio::test]
async fn slow_body_is_cut_off_by_the_timeout_layer() {
    let _serial = SERIAL.lock().await;
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(300),
        ))
        .layer(layer())
        .service(jti_service());
    let addr = serve_hyper(svc).await;
    let body = br#"{"event":"slow"}"#;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /x HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-length: {}\r\n\r\n",
        bearer(body),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // A byte every 100 ms, until the server answers (bounded by the body's length).
    for &byte in body.iter() {
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// An inner service that fails in the way `mode` says.
#[derive(Clone)]
struct Faulty {
    mode: &'static str,
}

impl tower::Service<Request<VerifiedBody>> for Faulty {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.mode {
            "not ready" => Poll::Ready(Err(std::io::Error::other("overloaded"))),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, _: Request<VerifiedBody>) -> Self::Future {
        match self.mode {
            "error" => std::future::ready(Err(std::io::Error::other("database down"))),
            "panic" => panic!("handler bug"),
            _ => std::future::ready(Ok(Response::new(Full::default()))),
        }
    }
}

#[tokio::test]
async fn faulty_inner_services_leave_no_reservation_behind() {
    let _serial = SERIAL.lock().await;
    const BODY: &[u8] = b"{}";
    let send_to = |addr: std::net::SocketAddr, auth: String| async move {
        let req = Request::post(format!("http://{addr}/x"))
            .header("authorization", auth)
            .body(Full::new(Bytes::from_static(BODY)))
            .unwrap();
        client().request(req).await.map(|r| r.status())
    };

    for mode in ["error", "not ready"] {
        let store = MemoryReplayStore::new();
        let svc = ServiceBuilder::new()
            .layer(layer().replay_store(store.clone()))
            .service(Faulty { mode });
        let addr = serve_hyper(svc).await;
        assert!(
            send_to(addr, bearer(BODY)).await.is_err(),
            "{mode}: connection closed"
        );
        assert!(store.is_empty(), "{mode}: reservation left behind");
    }

    // A panic caught inside the layer is a 500: the jti is released and the retry accepted.
    let store = MemoryReplayStore::new();
    let svc = ServiceBuilder::new()
        .layer(layer().replay_store(store.clone()))
        .layer(CatchPanicLayer::new())
        .service(Faulty { mode: "panic" });
    let addr = serve_hyper(svc).await;
    let auth = bearer(BODY);
    assert_eq!(
        send_to(addr, auth.clone()).await.unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(store.is_empty());

    // Caught outside the layer: the panic unwinds through the layer's future, whose drop
    // abandons the reservation.
    let store = MemoryReplayStore::new();
    let svc = ServiceBuilder::new()
        .layer(CatchPanicLayer::new())
        .layer(layer().replay_store(store.clone()))
        .service(Faulty { mode: "panic" });
    let addr = serve_hyper(svc).await;
    assert_eq!(
        send_to(addr, auth).await.unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(store.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_callbacks_over_32_connections_are_all_accepted() {
    let _serial = SERIAL.lock().await;
    const TOTAL: usize = 20_000;
    const CONNECTIONS: usize = 32;
    const BODY: &[u8] = br#"{"sessionId":"1_MX4","event":"streamCreated"}"#;
    let capacity = 2 * TOTAL;
    let store = MemoryReplayStore::with_capacity(capacity);
    let addr = serve_axum(echo_app(layer().replay_store(store.clone()))).await;
    let auths: Vec<String> = (0..TOTAL).map(|_| bearer(BODY)).collect();
    let rss_before = proc_status_bytes("VmRSS:");

    let started = Instant::now();
    let per_connection = TOTAL / CONNECTIONS;
    let tasks: Vec<_> = auths
        .chunks(per_connection)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let mut ok = 0;
                for auth in chunk {
                    sender.ready().await.unwrap();
                    let req = Request::post("/x")
                        .header("host", "x")
                        .header("authorization", auth)
                        .body(Full::new(Bytes::from_static(BODY)))
                        .unwrap();
                    let res = sender.send_request(req).await.unwrap();
                    if res.status() == StatusCode::OK {
                        ok += 1;
                    }
                    http_body_util::BodyExt::collect(res.into_body())
                        .await
                        .unwrap();
                }
                ok
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .unwrap()
            .unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(accepted, TOTAL, "every callback accepted, none lost");
    assert_eq!(store.len(), TOTAL, "every jti remembered");
    assert!(store.len() <= store.capacity());
    let grown = proc_status_bytes("VmRSS:").saturating_sub(rss_before);
    println!(
        "{TOTAL} callbacks over {CONNECTIONS} connections in {elapsed:?}; RSS grew {:.1} MiB \
         ({} bytes per remembered jti, at most)",
        grown as f64 / 1048576.0,
        grown / TOTAL as u64
    );
}
