//! The inner service behind the layer: sends each verified request to the upstream over the
//! pool's kept-alive connections and hands back its answer, so that the layer burns the `jti`
//! only when the upstream said 2xx. An upstream that cannot be reached, or answers more than the
//! body limit or not as HTTP/1.1 frames it unambiguously, is 502, one slower than the timeout
//! 504: Vonage retries both, and the layer has released the reservation.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Extensions, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tower::Service;
use vonage_secure_callbacks::sms::VerifiedSms;
use vonage_secure_callbacks::{SecretUsed, VerifiedBody, VonageClaims};

use super::exchange::{Outbound, UpstreamError};
use super::headers::{self, Facts};
use super::pool::Pool;
use super::upstream::{Outcome, UpstreamSeries};

/// The target the proxy's lines are logged under.
pub const TARGET: &str = "vonage_callbacks::proxy";

/// Forwards to one upstream. Cloned per request, so one `Arc`.
#[derive(Clone)]
pub struct Forward(Arc<Settings>);

struct Settings {
    pool: Pool,
    /// The upstream's `host:port`, sent as each request's Host.
    host: HeaderValue,
    /// The upstream URL's path, without its last `/`: a prefix to each request's path.
    prefix: String,
    timeout: Duration,
    keep_authorization: bool,
    series: UpstreamSeries,
}

impl Forward {
    /// Forwards to `upstream`, which must be an `http://` URL with a host, and reads answers
    /// of at most `answer_limit` bytes within `timeout`.
    pub fn new(
        upstream: &Uri,
        timeout: Duration,
        answer_limit: usize,
        keep_authorization: bool,
    ) -> Result<Self, String> {
        let authority = upstream
            .authority()
            .filter(|_| upstream.scheme_str() == Some("http"))
            .ok_or("--upstream must be an http:// URL with a host")?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| "--upstream: the host is not a valid Host header")?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self(Arc::new(Settings {
            pool: Pool::new(format!("{}:{port}", authority.host()), answer_limit),
            host,
            prefix: upstream.path().trim_end_matches('/').to_owned(),
            timeout,
            keep_authorization,
            series: UpstreamSeries::new(),
        })))
    }
}

/// What was verified, for the upstream's headers and the log line.
fn facts_of(extensions: &Extensions) -> Facts<'_> {
    if let Some(claims) = extensions.get::<VonageClaims>() {
        return Facts {
            id: Some((headers::JTI, claims.jti())),
            api_key: Some(claims.api_key()),
            application_id: claims.application_id(),
            secret: Some(secret_of(claims.secret())),
        };
    }
    if let Some(sms) = extensions.get::<VerifiedSms>() {
        return Facts {
            id: Some((headers::NONCE, sms.replay_id())),
            api_key: Some(sms.api_key()),
            application_id: None,
            secret: Some(secret_of(sms.secret())),
        };
    }
    Facts::default()
}

/// Which secret verified the callback: its label (`current`, `previous`), else its position.
fn secret_of(secret: &SecretUsed) -> Cow<'_, str> {
    match secret.label() {
        Some(label) => Cow::Borrowed(label),
        None => Cow::Owned(secret.to_string()),
    }
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
            let (mut parts, body) = request.into_parts();
            // The verified facts stay here, for the log line; the upstream gets them as headers.
            let extensions = std::mem::take(&mut parts.extensions);
            headers::strip(&mut parts.headers, this.0.keep_authorization);
            let facts = facts_of(&extensions);
            let body = body.into_bytes();
            let outbound = Outbound {
                method: &parts.method,
                // The upstream's path as a prefix, then the request's path and query: origin
                // form with plain segments (the gate saw to it), so the prefix confines it.
                target: [
                    &this.0.prefix,
                    parts.uri.path_and_query().map_or("/", PathAndQuery::as_str),
                ],
                host: &this.0.host,
                headers: &parts.headers,
                facts: &facts,
                body: &body,
            };
            let exchange = this.0.pool.send(&outbound, started);
            // A failure's outcome, and the proxy's own answer for it: 504 for a timeout, else 502.
            let answered = match tokio::time::timeout(this.0.timeout, exchange).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(UpstreamError::TooLarge)) => Err((
                    Outcome::TooLarge,
                    StatusCode::BAD_GATEWAY,
                    "upstream_answer_too_large",
                )),
                Ok(Err(UpstreamError::Invalid(_))) => Err((
                    Outcome::Invalid,
                    StatusCode::BAD_GATEWAY,
                    "upstream_answer_invalid",
                )),
                Ok(Err(UpstreamError::Io(_) | UpstreamError::Closed)) => Err((
                    Outcome::Unreachable,
                    StatusCode::BAD_GATEWAY,
                    "upstream_unreachable",
                )),
                Err(_) => Err((
                    Outcome::Timeout,
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                )),
            };
            let elapsed = started.elapsed();
            // Written as they are, not escaped: they are claims of a verified token (so signed
            // by Vonage) or the proxy's own words.
            let api_key = tracing::field::display(facts.api_key.unwrap_or(""));
            let id = tracing::field::display(facts.id.as_ref().map_or("", |(_, id)| id));
            let upstream_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            let (response, outcome) = match answered {
                Ok(answer) => {
                    let outcome = Outcome::Answered(answer.status());
                    tracing::info!(target: TARGET, api_key, id, upstream = %outcome, upstream_ms, "forwarded");
                    (answer.map(Full::new), outcome)
                }
                Err((outcome, status, code)) => {
                    tracing::warn!(target: TARGET, api_key, id, upstream = %outcome, upstream_ms, "not delivered: the upstream failed; released for Vonage's retry");
                    (error_response(status, code), outcome)
                }
            };
            this.0.series.record(outcome, elapsed);
            Ok(response)
        })
    }
}

/// A JSON error of the proxy's own, `{"error":"<code>"}`.
pub fn error_response(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!(r#"{{"error":"{code}"}}"#))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
