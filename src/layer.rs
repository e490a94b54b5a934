//! `SecureCallbackLayer`: the configuration, and the tower `Layer` that applies it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tower_layer::Layer;

use crate::clock::Clock;
use crate::rejection::{DefaultRejection, OnRejection};
use crate::replay::{MemoryReplayStore, ReplayStore};
use crate::secrets::Secrets;
use crate::service::SecureCallbackService;
use crate::verify::CallbackVerifier;

/// What every service and response future of one layer shares, behind one `Arc`.
pub(crate) struct Shared<R, F> {
    pub(crate) verifier: CallbackVerifier,
    pub(crate) store: R,
    pub(crate) on_rejection: F,
}

/// Verifies Vonage signed callbacks before they reach the inner service.
///
/// Per request: a `Content-Length` over the limit is refused at once (413); the token is checked
/// (scheme, HS256 only, signature with the project's secrets, issuer, age); the body is buffered
/// up to the limit and its SHA-256 compared with `payload_hash`; the `jti` is reserved in the
/// replay store; the inner service then gets the request with [`VonageClaims`] in its extensions
/// and the buffered body. Everything that needs only the headers is checked before the body is
/// read, so a forged callback never costs a body read.
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use http::StatusCode;
/// use vonage_secure_callbacks::{Secret, SecureCallbackLayer, Secrets, VonageClaims};
///
/// async fn on_session(Extension(claims): Extension<VonageClaims>, body: String) -> StatusCode {
///     println!("{} sent {} bytes", claims.api_key(), body.len());
///     StatusCode::OK
/// }
///
/// let secret = Secret::new("a-signature-secret-of-32-bytes-or-more").unwrap();
/// let layer = SecureCallbackLayer::new(Secrets::new().project("a1b2c3d", secret));
/// let app: Router = Router::new().route("/vonage/session", post(on_session)).layer(layer);
/// ```
///
/// [`VonageClaims`]: crate::VonageClaims
pub struct SecureCallbackLayer<R = MemoryReplayStore, F = DefaultRejection> {
    shared: Arc<Shared<R, F>>,
}

impl SecureCallbackLayer {
    /// A layer accepting callbacks signed with `secrets`, with the defaults: body limit 1 MiB,
    /// max age 24 h, skew 5 min, issuer `Vonage`, payload hash checked, the process-wide
    /// in-memory replay store, JSON rejections.
    pub fn new(secrets: Secrets) -> Self {
        Self::from_verifier(CallbackVerifier::new(secrets))
    }

    /// A layer around an already configured verifier.
    pub fn from_verifier(verifier: CallbackVerifier) -> Self {
        Self {
            shared: Arc::new(Shared {
                verifier,
                store: MemoryReplayStore::shared(),
                on_rejection: DefaultRejection::default(),
            }),
        }
    }
}

impl<R: Clone, F: Clone> SecureCallbackLayer<R, F> {
    fn map_verifier(mut self, f: impl FnOnce(CallbackVerifier) -> CallbackVerifier) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.verifier = f(shared.verifier.clone());
        self
    }

    /// Largest body accepted, in bytes, inclusive (default 1 MiB). Larger: 413 `body_too_large`.
    pub fn body_limit(self, limit: usize) -> Self {
        self.map_verifier(|v| v.body_limit(limit))
    }

    /// How old `iat` may be (default 24 h, Vonage's retry horizon); also how long a delivered
    /// `jti` is remembered.
    pub fn max_age(self, max_age: Duration) -> Self {
        self.map_verifier(|v| v.max_age(max_age))
    }

    /// How far in the future `iat` may lie, and how late an `exp` is honoured (default 5 min).
    pub fn clock_skew(self, skew: Duration) -> Self {
        self.map_verifier(|v| v.clock_skew(skew))
    }

    /// The issuer `iss` must equal (default `"Vonage"`).
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        self.map_verifier(|v| v.issuer(issuer))
    }

    /// The source of "now" for the token's time checks and the replay store's expiry (default
    /// the system clock).
    pub fn clock(self, clock: impl Clock) -> Self {
        self.map_verifier(|v| v.clock(clock))
    }

    /// For GET requests, check `payload_hash` against the query parameters instead of the empty
    /// body: Voice's `answer_url` and the other GET webhooks sign those (see
    /// [`query_payload`](crate::query_payload)). Off by default; POST and every other method
    /// always hash the body.
    pub fn verify_get_query(self) -> Self {
        self.map_verifier(CallbackVerifier::verify_get_query)
    }

    pub(crate) fn skip_payload_hash_check(self) -> Self {
        self.map_verifier(CallbackVerifier::skip_payload_hash_check)
    }

    /// Where `jti`s are kept (default [`MemoryReplayStore::shared`], the one process-wide
    /// store, so that layers on different routes never each accept the same callback).
    pub fn replay_store<R2: ReplayStore>(self, store: R2) -> SecureCallbackLayer<R2, F> {
        self.rebuild(|s| Shared {
            verifier: s.verifier,
            store,
            on_rejection: s.on_rejection,
        })
    }

    /// Replaces the rejection response. Any `Fn(Rejection) -> Response<Bytes>` works.
    pub fn on_rejection<F2: OnRejection>(self, on_rejection: F2) -> SecureCallbackLayer<R, F2> {
        self.rebuild(|s| Shared {
            verifier: s.verifier,
            store: s.store,
            on_rejection,
        })
    }

    /// A layer of other types from this one's parts.
    fn rebuild<R2, F2>(
        self,
        f: impl FnOnce(Shared<R, F>) -> Shared<R2, F2>,
    ) -> SecureCallbackLayer<R2, F2> {
        SecureCallbackLayer {
            shared: Arc::new(f(Arc::unwrap_or_clone(self.shared))),
        }
    }

    /// The verifier this layer applies.
    pub fn verifier(&self) -> &CallbackVerifier {
        &self.shared.verifier
    }

    /// The replay store this layer uses.
    pub fn store(&self) -> &R {
        &self.shared.store
    }
}

impl<R: Clone> SecureCallbackLayer<R, DefaultRejection> {
    /// Status of the `missing_token` rejection (default 503, so that Vonage retries an unsigned
    /// callback and sends it signed).
    pub fn missing_token_status(self, status: StatusCode) -> Self {
        let rejection = self.shared.on_rejection.missing_token_status(status);
        self.on_rejection(rejection)
    }
}

impl<R: Clone, F: Clone> Clone for Shared<R, F> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            store: self.store.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<R, F> Clone for SecureCallbackLayer<R, F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S, R, F> Layer<S> for SecureCallbackLayer<R, F> {
    type Service = SecureCallbackService<S, R, F>;

    fn layer(&self, inner: S) -> Self::Service {
        SecureCallbackService::new(inner, Arc::clone(&self.shared))
    }
}

impl<R: fmt::Debug, F> fmt::Debug for SecureCallbackLayer<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureCallbackLayer")
            .field("verifier", &self.shared.verifier)
            .field("store", &self.shared.store)
            .field(
                "on_rejection",
                &format_args!("{}", std::any::type_name::<F>()),
            )
            .finish()
    }
}
