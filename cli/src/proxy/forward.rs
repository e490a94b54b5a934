//! The inner service behind the layer: sends each verified request to the upstream and hands
//! back its answer, so that the layer burns the `jti` only when the upstream said 2xx. An
//! upstream that cannot be reached is 502, one slower than the timeout 504: Vonage retries both,
//! and the layer has released the reservation.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::Service;
use vonage_secure_callbacks::sms::VerifiedSms;
use vonage_secure_callbacks::{VerifiedBody, VonageClaims};

use super::headers;

/// Forwards to one upstream. Cloned per request (the router does), so one `Arc`.
#[derive(Clone)]
pub struct Forward(Arc<Settings>);

struct Settings {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Uri,
    timeout: Duration,
    keep_authorization: bool,
}

impl Forward {
    pub fn new(upstream: Uri, timeout: Duration, keep_authorization: bool) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self(Arc::new(Settings {
            client,
            upstream,
            timeout,
            keep_authorization,
        }))
    }

    /// The upstream's URI for `uri`: the upstream's scheme and authority, its path as a prefix,
    /// then the request's path and query.
    fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let upstream = &self.0.upstream;
        let base = upstream.path().trim_end_matches('/');
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        Uri::builder()
            .scheme(upstream.scheme_str().unwrap_or("http"))
            .authority(upstream.authority().map_or("", |a| a.as_str()))
            .path_and_query(format!("{base}{path_and_query}"))
            .build()
    }
}

/// What was verified, as headers for the upstream.
fn verified_facts(request: &Request<VerifiedBody>) -> Vec<(&'static str, String)> {
    let mut facts = vec![("x-vonage-verified", "1".to_owned())];
    if let Some(claims) = request.extensions().get::<VonageClaims>() {
        facts.push(("x-vonage-jti", claims.jti().to_owned()));
        facts.push(("x-vonage-api-key", claims.api_key().to_owned()));
        if let Some(id) = claims.application_id() {
            facts.push(("x-vonage-application-id", id.to_owned()));
        }
        facts.push(("x-vonage-secret", claims.secret().to_string()));
    }
    if let Some(sms) = request.extensions().get::<VerifiedSms>() {
        facts.push(("x-vonage-nonce", sms.replay_id().to_owned()));
        facts.push(("x-vonage-api-key", sms.api_key().to_owned()));
        facts.push(("x-vonage-secret", sms.secret().to_string()));
    }
    facts
}

impl Service<Request<VerifiedBody>> for Forward {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<VerifiedBody>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let started = Instant::now();
            let facts = verified_facts(&request);
            let (mut parts, body) = request.into_parts();
            let Ok(target) = this.target(&parts.uri) else {
                return Ok(status(StatusCode::BAD_GATEWAY, "upstream_uri"));
            };
            headers::strip(&mut parts.headers, this.0.keep_authorization);
            let borrowed: Vec<(&'static str, &str)> =
                facts.iter().map(|(n, v)| (*n, v.as_str())).collect();
            headers::add(&mut parts.headers, &borrowed);
            // The Host of the upstream, as a client of it would send.
            parts.headers.remove(http::header::HOST);
            parts.uri = target;
            // The upstream hop is HTTP/1.1 whatever the client spoke (HTTP/2 over TLS, say).
            parts.version = http::Version::HTTP_11;
            let body = Full::new(body.into_bytes());
            let outbound = Request::from_parts(parts, body);
            let exchange = async {
                let response = this.0.client.request(outbound).await?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Response::from_parts(parts, body))
            };
            let (response, outcome) = match tokio::time::timeout(this.0.timeout, exchange).await {
                Ok(Ok(response)) => {
                    let code = response.status().as_u16().to_string();
                    (response.map(Full::new), code)
                }
                Ok(Err(_)) => (
                    status(StatusCode::BAD_GATEWAY, "upstream_unreachable"),
                    "unreachable".into(),
                ),
                Err(_) => (
                    status(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                    "timeout".into(),
                ),
            };
            let elapsed = started.elapsed();
            metrics::counter!(super::UPSTREAM_RESPONSES, "status" => outcome.clone()).increment(1);
            metrics::histogram!(super::UPSTREAM_SECONDS).record(elapsed.as_secs_f64());
            let id = facts
                .iter()
                .find(|(n, _)| *n == "x-vonage-jti" || *n == "x-vonage-nonce")
                .map_or("", |(_, v)| v.as_str());
            let key = facts
                .iter()
                .find(|(n, _)| *n == "x-vonage-api-key")
                .map_or("", |(_, v)| v.as_str());
            tracing::info!(
                target: "vonage_callbacks::proxy",
                api_key = key,
                id,
                upstream = %outcome,
                upstream_ms = elapsed.as_millis() as u64,
                "forwarded"
            );
            Ok(response)
        })
    }
}

/// A JSON error of the proxy's own.
fn status(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!(r#"{{"error":"{code}"}}"#))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
