//! The least a hyper-based hop can do: each client connection served by hyper's HTTP/1 server
//! and paired with one upstream connection of hyper's HTTP/1 client, requests and answers
//! passed through unchanged, with no timeout, log or metric. What it costs is the floor under
//! any proxy built on hyper and tokio, the verifying proxy among them.
//!
//! [`Check::Streamed`] verifies nothing and streams bodies through. [`Check::InPlace`] reads
//! each body whole and verifies the callback with [`CallbackVerifier::verify`] before
//! forwarding it (401 if it fails): the verification itself, done where a proxy does it, with
//! no replay store, no facts for the upstream and nothing else of the proxy's.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use vonage_secure_callbacks::CallbackVerifier;

/// What the hop does to each request before forwarding it.
#[derive(Clone)]
pub enum Check {
    /// Nothing: the body is streamed through.
    Streamed,
    /// The body read whole and the callback verified by this verifier.
    InPlace(Arc<CallbackVerifier>),
}

/// The upstream connection, shared by a client connection's requests.
type Upstream = Arc<Mutex<SendRequest<Either<Incoming, Full<Bytes>>>>>;

/// The answer a hop sends back: the upstream's, or its own 401.
type Answer = Response<Either<Incoming, Empty<Bytes>>>;

/// The argument that starts a benchmark's own binary as the bare hop ([`Check::Streamed`]).
pub const STREAMED: &str = "--hyper-hop";
/// The argument that starts it as the hop verifying in place ([`Check::InPlace`]).
pub const VERIFYING: &str = "--hyper-hop-verifying";

/// The running benchmark's own binary, to be started as a hop: `mode` ([`STREAMED`] or
/// [`VERIFYING`]) on `port`, forwarding to `upstream`.
pub fn command(mode: &str, port: u16, upstream: u16) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args([mode, &port.to_string(), &upstream.to_string()]);
    command
}

/// Serves the hop until killed when `args` are those of [`command`]; returns at once otherwise.
pub fn run_if_asked(args: &[String]) {
    let [_, mode, port, upstream] = args else {
        return;
    };
    let check = match mode.as_str() {
        STREAMED => Check::Streamed,
        // The system's clock: the benchmarks sign each callback as they send it.
        VERIFYING => Check::InPlace(Arc::new(CallbackVerifier::new(crate::secrets()))),
        _ => return,
    };
    run(port.parse().unwrap(), upstream.parse().unwrap(), check);
}

/// Listens on `127.0.0.1:port` and forwards to `127.0.0.1:upstream` until killed, on one
/// thread, as the proxy and nginx each run on one.
pub fn run(port: u16, upstream: u16, check: Check) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let check = check.clone();
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = upstream.set_nodelay(true);
                let Ok((sender, connection)) =
                    hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
                else {
                    return;
                };
                tokio::spawn(connection);
                // hyper's server asks for one answer at a time on a connection, so the lock is
                // never contended; it only satisfies `Service::call(&self)`.
                let sender = Arc::new(Mutex::new(sender));
                let service = hyper::service::service_fn(move |request| {
                    forward(Arc::clone(&sender), check.clone(), request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(client), service)
                    .await;
            });
        }
    });
}

async fn forward(
    sender: Upstream,
    check: Check,
    request: Request<Incoming>,
) -> Result<Answer, hyper::Error> {
    let request = match check {
        Check::Streamed => request.map(Either::Left),
        Check::InPlace(verifier) => {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            if verifier.verify(&parts.headers, &body).is_err() {
                let mut refused = Response::new(Either::Right(Empty::new()));
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                return Ok(refused);
            }
            Request::from_parts(parts, Either::Right(Full::new(body)))
        }
    };
    std::future::poll_fn(|cx| sender.lock().unwrap().poll_ready(cx)).await?;
    let sent = sender.lock().unwrap().send_request(request);
    Ok(sent.await?.map(Either::Left))
}
