//! The inner service behind the layer: sends each verified request to the upstream over the
//! pool's hyper client connections and hands back its answer, so that the layer burns the `jti` only
//! when the upstream said 2xx. An upstream that cannot be reached, or answers more than the body
//! limit or not as HTTP/1.1 frames it unambiguously, is 502, one slower than the timeout 504:
//! Vonage retries both, and the layer has released the reservation.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{Extensions, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower::Service;
use vonage_secure_callbacks::sms::VerifiedSms;
use vonage_secure_callbacks::{SecretUsed, VerifiedBody, VonageClaims};

use super::headers::{self, Facts};
use super::pool::{failure_of, Failure, Pool};
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
    answer_limit: usize,
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
            pool: Pool::new(format!("{}:{port}", authority.host())),
            host,
            prefix: upstream.path().trim_end_matches('/').to_owned(),
            timeout,
            answer_limit,
            keep_authorization,
            series: UpstreamSeries::new(),
        })))
    }

    /// The request the upstream gets: the verified one's method, path (under the prefix),
    /// end-to-end headers and exact body, with the facts that were verified.
    fn outbound(&self, request: Request<VerifiedBody>) -> (Request<Full<Bytes>>, Extensions) {
        let settings = &self.0;
        let (mut parts, body) = request.into_parts();
        // The verified facts stay here, for the log line; the upstream gets them as headers.
        let extensions = std::mem::take(&mut parts.extensions);
        headers::strip(&mut parts.headers, settings.keep_authorization);
        facts_of(&extensions).insert_into(&mut parts.headers);
        parts.headers.insert(HOST, settings.host.clone());
        // Origin-form, under the prefix. The target was checked to be origin-form with plain
        // segments, and the prefix came from a valid URL, so together they are a valid one.
        let target = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        if !settings.prefix.is_empty() {
            parts.uri = Uri::try_from(format!("{}{target}", settings.prefix)).unwrap_or_default();
        }
        parts.version = Version::HTTP_11;
        (
            Request::from_parts(parts, Full::new(body.into_bytes())),
            extensions,
        )
    }

    /// The upstream's whole answer, or why there is none.
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Response<Bytes>, Outcome> {
        let (answer, mut upstream) = self.0.pool.send(request).await.map_err(outcome_of)?;
        let (mut parts, body) = answer.into_parts();
        // Both a length and chunks: which one frames it is what response splitting plays on.
        if parts.headers.contains_key(TRANSFER_ENCODING)
            && parts.headers.contains_key(CONTENT_LENGTH)
        {
            return Err(Outcome::Invalid);
        }
        let body = upstream
            .drive(Limited::new(body, self.0.answer_limit).collect())
            .await
            .map_err(outcome_of)?
            .map_err(|err| match err.downcast_ref::<hyper::Error>() {
                _ if err.is::<LengthLimitError>() => Outcome::TooLarge,
                Some(err) => outcome_of(failure_of(err)),
                None => Outcome::Unreachable,
            })?
            .to_bytes();
        // Read whole: the connection can carry the next callback.
        self.0.pool.give_back(upstream);
        headers::strip_answer(&mut parts.headers);
        Ok(Response::from_parts(parts, body))
    }
}

fn outcome_of(failure: Failure) -> Outcome {
    match failure {
        Failure::Unreachable => Outcome::Unreachable,
        Failure::Invalid => Outcome::Invalid,
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
            let (outbound, extensions) = this.outbound(request);
            let answered = tokio::time::timeout(this.0.timeout, this.exchange(outbound))
                .await
                .unwrap_or(Err(Outcome::Timeout));
            let elapsed = started.elapsed();
            let facts = facts_of(&extensions);
            let api_key = facts.api_key.unwrap_or("");
            let id = facts.id.map_or("", |(_, id)| id);
            let upstream_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            // Written as they are, not escaped: they are claims of a verified token (so signed
            // by Vonage) or the proxy's own words.
            let (api_key, id) = (
                tracing::field::display(api_key),
                tracing::field::display(id),
            );
            let (response, outcome) = match answered {
                Ok(answer) => {
                    let outcome = Outcome::Answered(answer.status());
                    tracing::info!(target: TARGET, api_key, id, upstream = %outcome, upstream_ms, "forwarded");
                    (answer.map(Full::new), outcome)
                }
                Err(outcome) => {
                    tracing::warn!(target: TARGET, api_key, id, upstream = %outcome, upstream_ms, "not delivered: the upstream failed; released for Vonage's retry");
                    (failure(outcome), outcome)
                }
            };
            this.0.series.record(outcome, elapsed);
            Ok(response)
        })
    }
}

/// The proxy's own answer when the upstream gave none: 504 for a timeout, else 502.
fn failure(outcome: Outcome) -> Response<Full<Bytes>> {
    let (status, code) = match outcome {
        Outcome::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        Outcome::TooLarge => (StatusCode::BAD_GATEWAY, "upstream_answer_too_large"),
        Outcome::Invalid => (StatusCode::BAD_GATEWAY, "upstream_answer_invalid"),
        Outcome::Unreachable | Outcome::Answered(_) => {
            (StatusCode::BAD_GATEWAY, "upstream_unreachable")
        }
    };
    error_response(status, code)
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
