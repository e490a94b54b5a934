//! `SecureCallbackService`: the middleware service produced by [`SecureCallbackLayer`].
//!
//! [`SecureCallbackLayer`]: crate::SecureCallbackLayer

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;

use crate::body::{ResponseBody, VerifiedBody};
use crate::future::ResponseFuture;
use crate::layer::SecureCallbackLayer;
use crate::replay::{MemoryReplayStore, ReplayStore};
use crate::shared::Shared;
use crate::verify::CallbackVerifier;

/// Verifies each request, then calls the inner service with a `Request<VerifiedBody>`
/// carrying [`VonageClaims`](crate::VonageClaims) in its extensions.
pub struct SecureCallbackService<S, R = MemoryReplayStore> {
    inner: S,
    shared: Arc<Shared<R>>,
}

impl<S> SecureCallbackService<S> {
    /// Wraps `inner` with `verifier` (or [`Secrets`](crate::Secrets) with the defaults), the
    /// process-wide replay store and JSON rejections: [`SecureCallbackLayer::new`] applied to
    /// one service.
    pub fn new(inner: S, verifier: impl Into<CallbackVerifier>) -> Self {
        SecureCallbackLayer::new(verifier).layer(inner)
    }

    /// The layer that makes this service: [`SecureCallbackLayer::new`].
    pub fn layer(verifier: impl Into<CallbackVerifier>) -> SecureCallbackLayer {
        SecureCallbackLayer::new(verifier)
    }
}

impl<S, R> SecureCallbackService<S, R> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<R>>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for SecureCallbackService<S, R>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    R: ReplayStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready goes with this request; a fresh clone stays behind
        // for the next `poll_ready`. Calling the clone instead would skip its readiness.
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        ResponseFuture::new(request, ready, Arc::clone(&self.shared))
    }
}

impl<S: Clone, R> Clone for SecureCallbackService<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for SecureCallbackService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureCallbackService")
            .field("inner", &self.inner)
            .field("scheme", &self.shared.scheme)
            .field("store", &self.shared.store)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::CallbackSigner;
    use crate::{Secret, Secrets, SecureCallbackLayer};
    use bytes::Bytes;
    use http_body_util::Full;
    use std::future::{ready, Ready};
    use tower::ServiceExt;
    use tower_layer::Layer;

    /// Must be polled ready before each call, and a clone starts unready: like a service whose
    /// permit (a buffer slot, a concurrency-limit token) belongs to the instance polled.
    #[derive(Default)]
    struct NeedsReady {
        ready: bool,
    }

    impl Clone for NeedsReady {
        fn clone(&self) -> Self {
            Self { ready: false }
        }
    }

    impl Service<Request<VerifiedBody>> for NeedsReady {
        type Response = Response<VerifiedBody>;
        type Error = &'static str;
        type Future = Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request<VerifiedBody>) -> Self::Future {
            ready(if std::mem::take(&mut self.ready) {
                Ok(Response::new(VerifiedBody::default()))
            } else {
                Err("called without poll_ready")
            })
        }
    }

    #[tokio::test]
    async fn calls_the_service_that_was_polled_ready() {
        const SECRET: &str = "clone-and-swap-secret-clone-and-swap";
        let layer =
            SecureCallbackLayer::new(Secrets::new().project("k", Secret::new(SECRET).unwrap()));
        let mut svc = layer.layer(NeedsReady::default());
        let signer = CallbackSigner::new("k", SECRET);
        for _ in 0..3 {
            let request = Request::post("/")
                .header("authorization", signer.authorization(b"{}"))
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc);
            let response = ready.await.unwrap().call(request).await;
            assert_eq!(
                response.expect("the readied service was called").status(),
                200
            );
        }
    }
}
