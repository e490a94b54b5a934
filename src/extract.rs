//! An axum extractor for verified, typed Video callbacks (feature `axum`).

use axum_core::body::Body;
use axum_core::extract::{FromRequest, Request};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::claims::VonageClaims;
use crate::events::VideoEvent;

/// The verified claims and the typed event of a Video callback, in one axum extractor.
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

impl<S: Send + Sync> FromRequest<S> for VideoCallback {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Some(claims) = request.extensions().get::<VonageClaims>().cloned() else {
            return Err(json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"layer_missing"}"#,
            ));
        };
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let event = VideoEvent::parse(&body)
            .map_err(|_| json_error(StatusCode::BAD_REQUEST, r#"{"error":"body_not_json"}"#))?;
        Ok(Self { claims, event })
    }
}
