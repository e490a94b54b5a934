//! Real servers on loopback and a real HTTP client, shared by the integration tests.
#![allow(dead_code)]

pub mod certificates;
pub mod example;
#[cfg(feature = "postgres")]
pub mod postgres_server;
#[cfg(feature = "redis")]
pub mod redis_servers;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{any, post as axum_post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use vonage_secure_callbacks::replay::ReplayStore;
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{
    CallbackVerifier, FixedClock, MemoryReplayStore, Secret, Secrets, SecureCallbackLayer,
    VonageClaims,
};

pub const API_KEY: &str = "a1b2c3d4";
pub const SECRET: &str = "integration-test-signature-secret-0001";
/// Every test runs at this fixed time, so that no test depends on the wall clock.
pub const NOW: u64 = 1_800_000_000;

pub fn signer() -> CallbackSigner {
    CallbackSigner::new(API_KEY, SECRET)
}

/// A token for `body`, issued at `NOW`, with `edit` applied to its claims.
pub fn token_at_now(body: &[u8], edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    signer().token_with(body, |c| {
        c.insert("iat".into(), json!(NOW));
        edit(c);
    })
}

pub fn bearer(body: &[u8]) -> String {
    format!("Bearer {}", token_at_now(body, |_| {}))
}

/// A string claim of a token, read without verification (the test knows what it signed).
pub fn claim_of(token: &str, name: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&json).ok()?;
    Some(claims[name].as_str()?.to_owned())
}

pub fn clock() -> FixedClock {
    FixedClock::new(NOW)
}

/// The verifier of the test secrets at the fixed time.
pub fn verifier() -> CallbackVerifier {
    CallbackVerifier::new(Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap()))
        .clock(clock())
}

/// The layer with test secrets, a fixed clock and a replay store of its own.
pub fn layer() -> SecureCallbackLayer {
    layer_with(|v| v)
}

/// As [`layer`], with the verifier configured by `configure`.
pub fn layer_with(
    configure: impl FnOnce(CallbackVerifier) -> CallbackVerifier,
) -> SecureCallbackLayer {
    SecureCallbackLayer::new(configure(verifier())).replay_store(MemoryReplayStore::new())
}

/// The claims handler of the examples: echoes what was verified.
pub async fn echo(Extension(claims): Extension<VonageClaims>, body: Bytes) -> Json<Value> {
    Json(json!({
        "api_key": claims.api_key(),
        "jti": claims.jti(),
        "iat": claims.iat(),
        "application_id": claims.application_id(),
        "body_len": body.len(),
    }))
}

/// An axum app answering every POST path with the echo, behind `layer`.
pub fn echo_app<R: ReplayStore>(layer: SecureCallbackLayer<R>) -> Router {
    Router::new().route("/{*path}", any(echo)).layer(layer)
}

/// How often a handler ran, per `jti`.
pub type RunsPerJti = Arc<Mutex<HashMap<String, usize>>>;

/// An app behind `layer` whose handler counts its runs per `jti` and answers `status`: what a
/// fault test counts to prove that no callback was handled twice.
pub fn counting_app<R: ReplayStore>(
    layer: SecureCallbackLayer<R>,
    status: StatusCode,
) -> (Router, RunsPerJti) {
    let runs = RunsPerJti::default();
    let counted = Arc::clone(&runs);
    let handler = move |Extension(claims): Extension<VonageClaims>| {
        let counted = Arc::clone(&counted);
        async move {
            *counted
                .lock()
                .unwrap()
                .entry(claims.jti().to_owned())
                .or_default() += 1;
            status
        }
    };
    (
        Router::new()
            .route("/{*p}", axum_post(handler))
            .layer(layer),
        runs,
    )
}

/// An app answering every POST path with `answer(n)` on its `n`-th call (from 0), and the
/// number of calls so far: a handler that fails, hangs or succeeds by turn.
pub fn answering_by_call<F, Fut>(answer: F) -> (Router, Arc<AtomicUsize>)
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = StatusCode> + Send + 'static,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let handler = move || answer(counted.fetch_add(1, Ordering::SeqCst));
    (Router::new().route("/{*p}", axum_post(handler)), calls)
}

pub async fn serve_axum(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Serves a tower service with hyper's own HTTP/1 server, one task per connection.
pub async fn serve_hyper<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .half_close(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// What came back from one request.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The `error` code of a rejection body.
    pub fn error(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        v["error"].as_str().unwrap_or("").to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// POSTs `body` to `addr` with an optional `Authorization` header, within 10 s.
pub async fn post(addr: SocketAddr, auth: Option<&str>, body: impl Into<Bytes>) -> Reply {
    let mut req = Request::post(format!("http://{addr}/vonage/callback"))
        .header("content-type", "application/json");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    send(req.body(Full::new(body.into())).unwrap()).await
}

pub async fn send(req: Request<Full<Bytes>>) -> Reply {
    send_any(req).await
}

/// Sends a request with any body over a fresh client, within 10 s.
pub async fn send_any<B>(req: Request<B>) -> Reply
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let fut = async {
        let res = Client::builder(TokioExecutor::new())
            .build_http::<B>()
            .request(req)
            .await
            .expect("request failed");
        let (parts, body) = res.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("request timed out")
}

/// A trivial inner tower service for hyper stacks: 200 with the claims' jti.
pub fn jti_service() -> impl tower::Service<
    Request<vonage_secure_callbacks::VerifiedBody>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send {
    tower::service_fn(
        |req: Request<vonage_secure_callbacks::VerifiedBody>| async move {
            let jti = req
                .extensions()
                .get::<VonageClaims>()
                .map(|c| c.jti().to_owned())
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(jti))))
        },
    )
}

/// A request body sent in the given chunks with no declared length (chunked encoding).
pub struct Chunked {
    chunks: std::collections::VecDeque<Bytes>,
}

impl Chunked {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
        }
    }
}

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(
            self.chunks
                .pop_front()
                .map(|c| Ok(http_body::Frame::data(c))),
        )
    }
}

/// POSTs `chunks` without a Content-Length.
pub async fn post_chunked(
    addr: SocketAddr,
    auth: &str,
    chunks: impl IntoIterator<Item = Bytes>,
) -> Reply {
    let req = Request::post(format!("http://{addr}/vonage/callback"))
        .header("authorization", auth)
        .body(Chunked::new(chunks))
        .unwrap();
    send_any(req).await
}
