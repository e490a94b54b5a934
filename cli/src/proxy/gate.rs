//! What every request passes before the verifier: a target the upstream prefix confines, and a
//! deadline on its body. Then the verifying service
//! of its path runs, [detached](super::detach) if its connection goes, so that a client leaving
//! mid-exchange cannot cut the upstream's exchange short: the callback is settled on the
//! upstream's answer (delivered on its 2xx) whether or not anyone is still there to read it.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use vonage_secure_callbacks::replay::ReplayStore;
use vonage_secure_callbacks::{ResponseBody, SecureCallbackService};

use super::body_deadline::BodyDeadline;
use super::detach::Detach;
use super::forward::{error_response, Forward, TARGET};
use super::target;

/// The library's layer over the forwarder, for bodies under their deadline.
pub type Verifying<R> = SecureCallbackService<Forward, R>;

/// What a request is answered with: the verifier's answer, or the gate's own refusal.
pub type Answer = Response<Either<ResponseBody<Full<Bytes>>, Full<Bytes>>>;

/// Counted for each request whose target is refused.
pub const TARGETS_REFUSED: &str = "vonage_proxy_targets_refused_total";

/// The verifying service of each path, and the bounds every request is held to.
pub struct Gate<R> {
    /// The SMS scheme's on the paths given.
    sms: Vec<(String, Verifying<R>)>,
    /// The JWT scheme's, on every other path.
    jwt: Verifying<R>,
    body_timeout: Duration,
    /// The exchanges whose connection went, each in a task of its own; shutdown waits for them.
    exchanges: TaskTracker,
}

impl<R: ReplayStore> Gate<R> {
    pub fn new(
        jwt: Verifying<R>,
        sms: Vec<(String, Verifying<R>)>,
        body_timeout: Duration,
    ) -> Self {
        Self {
            sms,
            jwt,
            body_timeout,
            exchanges: TaskTracker::new(),
        }
    }

    /// The exchanges whose connection went.
    pub fn exchanges(&self) -> &TaskTracker {
        &self.exchanges
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request<Incoming>) -> Result<Answer, Infallible> {
        if !target::is_confined(request.method(), request.uri()) {
            metrics::counter!(TARGETS_REFUSED).increment(1);
            tracing::info!(target: TARGET, method = %request.method(), "refused: the request target is not a plain origin-form path");
            let refusal = error_response(StatusCode::BAD_REQUEST, "invalid_target");
            return Ok(refusal.map(Either::Right));
        }
        let path = request.uri().path();
        let service = self
            .sms
            .iter()
            .find(|(sms_path, _)| sms_path == path)
            .map_or(&self.jwt, |(_, service)| service)
            .clone();
        let timeout = self.body_timeout;
        let request = request.map(|body| BodyDeadline::new(body, timeout));
        match Detach::new(service.oneshot(request), &self.exchanges).await {
            Ok(answer) => Ok(answer.map(Either::Left)),
            // The forwarder never fails.
            Err(never) => match never {},
        }
    }
}
