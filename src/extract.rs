//! axum extractors (feature `axum`): [`VonageClaims`] itself, and, with feature `events`,
//! [`VideoCallback`] for verified, typed Video callbacks.
//!
//! `VonageClaims` as a handler argument takes the claims the layer verified; without the layer
//! in front it answers `500 {"error":"layer_missing"}` rather than let an unverified request
//! through. `Option<VonageClaims>` is `None` there instead, for routes that serve both.
//!
//! ```
//! use axum::{routing::post, Router};
//! use http::StatusCode;
//! use vonage_secure_callbacks::{Secret, SecureCallbackLayer, Secrets, VonageClaims};
//!
//! async fn on_callback(claims: VonageClaims, body: String) -> StatusCode {
//!     println!("{} from {}: {} bytes", claims.jti(), claims.api_key(), body.len());
//!     StatusCode::OK
//! }
//!
//! let secret = Secret::new("a-signature-secret-of-32-bytes-or-more").unwrap();
//! let app: Router = Router::new()
//!     .route("/vonage/callback", post(on_callback))
//!     .layer(SecureCallbackLayer::new(Secrets::new().project("a1b2c3d", secret)));
//! ```

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::Response;
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};

use crate::claims::VonageClaims;
#[cfg(feature = "events")]
use crate::events::VideoEvent;
#[cfg(feature = "events")]
use axum_core::extract::{FromRequest, Request};
#[cfg(feature = "events")]
use axum_core::response::IntoResponse;
#[cfg(feature = "events")]
use bytes::Bytes;

/// The verified claims and the typed event of a Video callback, in one axum extractor
/// (features `axum` and `events`).
///
/// Use it behind [`SecureCallbackLayer`](crate::SecureCallbackLayer). A body that is not JSON
/// at all is answered `400 {"error":"body_not_json"}`; an event this crate does not know is
/// [`VideoEvent::Other`], never a rejection. Without the layer in front, the extractor answers
/// `500 {"error":"layer_missing"}` rather than hand over an unverified body.
///
/// ```
/// use axum::{routing::post, Router};
/// use http::StatusCode;
/// use vonage_secure_callbacks::events::VideoEvent;
/// use vonage_secure_callbacks::extract::VideoCallback;
/// use vonage_secure_callbacks::{Secret, SecureCallbackLayer, Secrets};
///
/// async fn on_video(VideoCallback { claims, event }: VideoCallback) -> StatusCode {
///     match event {
///         VideoEvent::Session(e) => println!("{} in {:?} for {}", e.event, e.session_id, claims.api_key()),
///         VideoEvent::Archive(a) => println!("archive {:?} is {:?}", a.id, a.status),
///         other => println!("{} {}", other.family(), other.kind()),
///     }
///     StatusCode::OK
/// }
///
/// let secret = Secret::new("a-signature-secret-of-32-bytes-or-more").unwrap();
/// let app: Router = Router::new()
///     .route("/vonage/video", post(on_video))
///     .layer(SecureCallbackLayer::new(Secrets::new().project("a1b2c3d", secret)));
/// ```
#[cfg(feature = "events")]
#[derive(Debug, Clone)]
pub struct VideoCallback {
    /// The verified token's claims.
    pub claims: VonageClaims,
    /// The body, typed.
    pub event: VideoEvent,
}

fn json_error(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn layer_missing() -> Response {
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"error":"layer_missing"}"#,
    )
}

impl<S: Send + Sync> FromRequestParts<S> for VonageClaims {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<VonageClaims>()
            .cloned()
            .ok_or_else(layer_missing)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VonageClaims {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VonageClaims>().cloned())
    }
}

#[cfg(feature = "events")]
impl<S: Send + Sync> FromRequest<S> for VideoCallback {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Some(claims) = request.extensions().get::<VonageClaims>().cloned() else {
            return Err(layer_missing());
        };
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let event = VideoEvent::parse(&body)
            .map_err(|_| json_error(StatusCode::BAD_REQUEST, r#"{"error":"body_not_json"}"#))?;
        Ok(Self { claims, event })
    }
}
