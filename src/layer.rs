//! `SecureCallbackLayer`: applies a [`CallbackVerifier`] and a replay store to a service.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::rejection::{DefaultRejection, OnRejection};
use crate::replay::{MemoryReplayStore, ReplayStore};
use crate::scheme::Scheme;
use crate::service::SecureCallbackService;
use crate::shared::Shared;
use crate::verify::CallbackVerifier;

/// Verifies Vonage signed callbacks before they reach the inner service.
///
/// Per request: a `Content-Length` over the limit is refused at once (413); the token is checked
/// (scheme, HS256 only, signature with the project's secrets, issuer, age); a `jti` already
/// delivered is refused (409) before the body is read; the body is buffered up to the limit and
/// its SHA-256 compared with `payload_hash`; the `jti` is reserved in the replay store; the inner
/// service then gets the request with [`VonageClaims`] in its extensions and the buffered body.
///
/// What is checked is configured once, on the [`CallbackVerifier`] the layer is built from
/// ([`Secrets`](crate::Secrets) alone turn into one with the defaults); the layer adds where
/// `jti`s are kept and what a rejection looks like.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::post, Extension, Router};
/// use http::StatusCode;
/// use vonage_secure_callbacks::{CallbackVerifier, Secret, SecureCallbackLayer, Secrets, VonageClaims};
///
/// async fn on_session(Extension(claims): Extension<VonageClaims>, body: String) -> StatusCode {
///     println!("{} sent {} bytes", claims.api_key(), body.len());
///     StatusCode::OK
/// }
///
/// let secret = Secret::new("a-signature-secret-of-32-bytes-or-more").unwrap();
/// let secrets = Secrets::new().project("a1b2c3d", secret);
/// // The defaults:
/// let layer = SecureCallbackLayer::new(secrets.clone());
/// // Or a configured verifier:
/// let layer = SecureCallbackLayer::new(CallbackVerifier::new(secrets).body_limit(64 * 1024));
/// let app: Router = Router::new().route("/vonage/session", post(on_session)).layer(layer);
/// ```
///
/// [`VonageClaims`]: crate::VonageClaims
pub struct SecureCallbackLayer<R = MemoryReplayStore> {
    shared: Arc<Shared<R>>,
}

impl SecureCallbackLayer {
    /// A layer applying `verifier` (or [`Secrets`](crate::Secrets) with the defaults: body limit
    /// 1 MiB, max age 24 h, skew 5 min, issuer `Vonage`, payload hash checked), with the
    /// process-wide in-memory replay store and JSON rejections.
    pub fn new(verifier: impl Into<CallbackVerifier>) -> Self {
        Self::with_scheme(Scheme::Jwt(verifier.into()))
    }

    /// A layer for the SMS API's signed requests (feature `sms`): the parameters' `sig`, by the
    /// verifier's method, then replay protection keyed by the `nonce`; the inner service finds
    /// [`VerifiedSms`](crate::sms::VerifiedSms) in the request's extensions. Same replay store
    /// (by default the process-wide one) and rejections as the JWT scheme.
    ///
    /// ```
    /// use axum::{routing::any, Extension, Router};
    /// use vonage_secure_callbacks::sms::{SignatureMethod, SmsVerifier, VerifiedSms};
    /// use vonage_secure_callbacks::{Secret, SecureCallbackLayer, Secrets};
    ///
    /// async fn on_sms(Extension(sms): Extension<VerifiedSms>) -> &'static str {
    ///     println!("from {:?}", sms.params().get("msisdn"));
    ///     "ok"
    /// }
    ///
    /// let secret = Secret::new("a-signature-secret-of-32-bytes-or-more").unwrap();
    /// let verifier = SmsVerifier::new(Secrets::new().project("a1b2c3d4", secret), SignatureMethod::HmacSha256);
    /// let app: Router = Router::new()
    ///     .route("/vonage/sms", any(on_sms))
    ///     .layer(SecureCallbackLayer::sms(verifier));
    /// ```
    #[cfg(feature = "sms")]
    pub fn sms(verifier: crate::sms::SmsVerifier) -> Self {
        Self::with_scheme(Scheme::Sms(verifier))
    }

    fn with_scheme(scheme: Scheme) -> Self {
        Self {
            shared: Arc::new(Shared {
                scheme,
                store: MemoryReplayStore::shared(),
                on_rejection: Arc::new(DefaultRejection::default()),
            }),
        }
    }
}

impl<R: Clone> SecureCallbackLayer<R> {
    /// Where `jti`s are kept (default [`MemoryReplayStore::shared`], the one process-wide
    /// store, so that layers on different routes never each accept the same callback).
    pub fn replay_store<R2: ReplayStore>(self, store: R2) -> SecureCallbackLayer<R2> {
        let shared = Arc::unwrap_or_clone(self.shared);
        SecureCallbackLayer {
            shared: Arc::new(Shared {
                scheme: shared.scheme,
                store,
                on_rejection: shared.on_rejection,
            }),
        }
    }

    /// Replaces the rejection response (default [`DefaultRejection`]). Any
    /// `Fn(Rejection) -> Response<Bytes>` works.
    pub fn on_rejection(mut self, on_rejection: impl OnRejection) -> Self {
        Arc::make_mut(&mut self.shared).on_rejection = Arc::new(on_rejection);
        self
    }

    /// The scheme and verifier this layer applies.
    pub fn scheme(&self) -> &Scheme {
        &self.shared.scheme
    }

    /// The replay store this layer uses.
    pub fn store(&self) -> &R {
        &self.shared.store
    }
}

impl<R> Clone for SecureCallbackLayer<R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S, R> Layer<S> for SecureCallbackLayer<R> {
    type Service = SecureCallbackService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        SecureCallbackService::from_shared(inner, Arc::clone(&self.shared))
    }
}

impl<R: fmt::Debug> fmt::Debug for SecureCallbackLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureCallbackLayer")
            .field("scheme", &self.shared.scheme)
            .field("store", &self.shared.store)
            .finish_non_exhaustive()
    }
}
