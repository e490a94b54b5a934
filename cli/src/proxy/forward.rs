//! The inner service behind the layer: sends each verified request to the upstream and hands
//! back its answer, so that the layer burns the `jti` only when the upstream said 2xx. An
//! upstream that cannot be reached, or answers more than the body limit or not as HTTP/1.1, is
//! 502, one slower than the timeout 504: Vonage retries both, and the layer has released the
//! reservation.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Extensions, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tower::Service;
use vonage_secure_callbacks::sms::VerifiedSms;
use vonage_secure_callbacks::{SecretUsed, VerifiedBody, VonageClaims};

use super::deadline::Deadlines;
use super::exchange::{Outbound, UpstreamError};
use super::headers::{self, Facts};
use super::log::{Access, Forwarded};
use super::pool::Pool;
use super::upstream::{Outcome, UpstreamSeries};

/// Forwards to one upstream. Cloned per request (the router does), so one `Arc`.
#[derive(Clone)]
pub struct Forward(Arc<Settings>);

struct Settings {
    pool: Pool,
    /// The upstream's `host:port`, sent as each request's Host.
    host: HeaderValue,
    /// The upstream URL's path, without its last `/`: a prefix to each request's path.
    prefix: String,
    timeout: Duration,
    deadlines: Deadlines,
    keep_authorization: bool,
    series: UpstreamSeries,
    access: Access,
}

impl Forward {
    /// Forwards to `upstream`, which must be an `http://` URL with a host, and reads answers
    /// of at most `answer_limit` bytes; logs each callback forwarded to `access`.
    pub fn new(
        upstream: &Uri,
        timeout: Duration,
        answer_limit: usize,
        keep_authorization: bool,
        access: Access,
    ) -> Result<Self, String> {
        let authority = upstream
            .authority()
            .filter(|_| upstream.scheme_str() == Some("http"))
            .ok_or("--upstream must be an http:// URL with a host")?;
        let port = authority.port_u16().unwrap_or(80);
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| "--upstream: the host is not a valid Host header")?;
        Ok(Self(Arc::new(Settings {
            pool: Pool::new(format!("{}:{port}", authority.host()), answer_limit),
            host,
            prefix: upstream.path().trim_end_matches('/').to_owned(),
            timeout,
            deadlines: Deadlines::default(),
            keep_authorization,
            series: UpstreamSeries::new(),
            access,
        })))
    }

    /// The upstream timeouts' board, whose [`Deadlines::keep`] must run for them to pass.
    pub fn deadlines(&self) -> Deadlines {
        self.0.deadlines.clone()
    }
}

/// What was verified, for the upstream's headers; the log line takes the api key and the
/// callback's id from it.
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
                // The upstream's path as a prefix, then the request's path and query.
                target: [
                    &this.0.prefix,
                    parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                ],
                host: &this.0.host,
                headers: &parts.headers,
                facts: &facts,
                body: &body,
            };
            let (response, outcome) = match (this.0.deadlines)
                .within(this.0.timeout, this.0.pool.send(&outbound, started))
                .await
            {
                Ok(Ok(response)) => {
                    let outcome = Outcome::Answered(response.status());
                    (response.map(Full::new), outcome)
                }
                Ok(Err(UpstreamError::TooLarge)) => (
                    status(StatusCode::BAD_GATEWAY, "upstream_answer_too_large"),
                    Outcome::TooLarge,
                ),
                Ok(Err(UpstreamError::Invalid(_))) => (
                    status(StatusCode::BAD_GATEWAY, "upstream_answer_invalid"),
                    Outcome::Invalid,
                ),
                Ok(Err(UpstreamError::Io(_) | UpstreamError::Closed)) => (
                    status(StatusCode::BAD_GATEWAY, "upstream_unreachable"),
                    Outcome::Unreachable,
                ),
                Err(_) => (
                    status(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                    Outcome::Timeout,
                ),
            };
            let elapsed = started.elapsed();
            this.0.access.forwarded(&Forwarded {
                api_key: facts.api_key.unwrap_or(""),
                id: facts.id.map_or("", |(_, id)| id),
                upstream: outcome.as_str(),
                upstream_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            });
            this.0.series.record(outcome, elapsed);
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
