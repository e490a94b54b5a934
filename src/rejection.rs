//! Why a callback was refused, and the HTTP response that says so.

use std::fmt;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// The one table of rejections: each variant with its docs, code and default status, in the
/// order the layer's checks can produce them. The enum, [`Rejection::ALL`], `code`, `status` and
/// `json_body` are all written from it.
macro_rules! rejections {
    ($($(#[$doc:meta])* $variant:ident => $code:literal, $status:ident;)*) => {
        /// The reason a callback was refused. Each has a stable machine-readable
        /// [`code`](Self::code) and a default [`status`](Self::status).
        ///
        /// The rejection is also placed in the response's extensions, so outer layers (logging,
        /// metrics) can read it without parsing the body.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Rejection {
            $($(#[$doc])* $variant,)*
        }

        impl Rejection {
            /// Every rejection: the JWT scheme's in the order the layer's checks can produce them
            /// (see [`Check`](crate::Check)), then the SMS scheme's own. A slice, since the enum
            /// may grow.
            pub const ALL: &'static [Rejection] = &[$(Rejection::$variant,)*];

            /// The machine-readable code, as sent in the body `{"error":"<code>"}`.
            pub const fn code(self) -> &'static str {
                match self {
                    $(Rejection::$variant => $code,)*
                }
            }

            /// The default status. 5xx answers are retried by Vonage; 4xx are not. What a retry
            /// may cure is 503: an unsigned callback, one in flight elsewhere, an unavailable
            /// store, and a validly signed token refused only by this host's clock (which may be
            /// the one at fault). 409 for replays: a retry would be refused the same way.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Rejection::$variant => StatusCode::$status,)*
                }
            }

            /// The JSON body sent by the default response, e.g. `{"error":"bad_signature"}`.
            pub const fn json_body(self) -> &'static str {
                match self {
                    $(Rejection::$variant => concat!(r#"{"error":""#, $code, r#""}"#),)*
                }
            }
        }
    };
}

rejections! {
    /// The body is larger than the configured limit (as declared before reading, or as read).
    BodyTooLarge => "body_too_large", PAYLOAD_TOO_LARGE;
    /// No `Authorization` header. Vonage may, after an internal error, send a callback
    /// unsigned and asks for a 5xx so that it is retried signed: 503 with `Retry-After`.
    MissingToken => "missing_token", SERVICE_UNAVAILABLE;
    /// Wrong scheme, not a JWT, bad base64 or JSON, a claim of the wrong type or missing.
    MalformedToken => "malformed_token", UNAUTHORIZED;
    /// The JWT header names an algorithm other than HS256.
    UnsupportedAlgorithm => "unsupported_algorithm", UNAUTHORIZED;
    /// No secret is configured for the token's `api_key`.
    UnknownApiKey => "unknown_api_key", UNAUTHORIZED;
    /// The HMAC matches none of the project's secrets.
    BadSignature => "bad_signature", UNAUTHORIZED;
    /// `iss` is not the expected issuer.
    BadIssuer => "bad_issuer", UNAUTHORIZED;
    /// `iat` (or `nbf`, or an SMS request's `timestamp`) lies further in the future than the
    /// allowed clock skew. 503, as for
    /// [`StaleToken`](Self::StaleToken): a clock running behind must not lose callbacks.
    TokenFromFuture => "token_from_future", SERVICE_UNAVAILABLE;
    /// `iat` (or an SMS request's `timestamp`) is older than the maximum age, or `exp` has
    /// passed. 503: the token is validly
    /// signed, and when this host's clock runs ahead every callback looks stale; Vonage's retry
    /// then gets through once the clock is right. A real replay of an old token is still refused.
    StaleToken => "stale_token", SERVICE_UNAVAILABLE;
    /// The token carries no `payload_hash`.
    MissingPayloadHash => "missing_payload_hash", UNAUTHORIZED;
    /// This `jti` was already delivered and answered with 2xx.
    ReplayedToken => "replayed_token", CONFLICT;
    /// The token is older than the replay store can vouch for: a full in-memory store forgot the
    /// oldest delivered `jti`s and now refuses tokens issued at or before them, since this might
    /// be a replay of one. Give the store a larger capacity, or use a durable store.
    ReplayWindowExceeded => "replay_window_exceeded", CONFLICT;
    /// The body could not be read (the client went away, a transport error).
    BodyReadError => "body_read_error", BAD_REQUEST;
    /// The SHA-256 of the received body differs from `payload_hash`.
    PayloadHashMismatch => "payload_hash_mismatch", UNAUTHORIZED;
    /// This `jti` is being handled right now by another request.
    DuplicateInFlight => "duplicate_in_flight", SERVICE_UNAVAILABLE;
    /// The replay store could not be reached in time, or is full of callbacks in flight or
    /// issued within the last minute.
    ReplayStoreUnavailable => "replay_store_unavailable", SERVICE_UNAVAILABLE;
    /// SMS scheme: the parameters could not be read without guessing: a name given twice,
    /// parameters in both the query and the body, text that is not UTF-8, or a JSON body that is
    /// not one object of strings and numbers.
    MalformedParameters => "malformed_parameters", BAD_REQUEST;
    /// SMS scheme: no `sig` parameter, on a route where the account signs its SMS requests.
    MissingSignature => "missing_signature", UNAUTHORIZED;
    /// SMS scheme: no numeric `timestamp` parameter beside the `sig`.
    MissingTimestamp => "missing_timestamp", UNAUTHORIZED;
}

impl Rejection {
    /// Parses a [`code`](Self::code) back into the rejection.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for Rejection {}

/// Builds the response for a rejection. Any `Fn(Rejection) -> Response<Bytes>` closure that is
/// `Send + Sync + 'static` is one; [`DefaultRejection`] is the default.
///
/// ```
/// use bytes::Bytes;
/// use http::{Response, StatusCode};
/// use vonage_secure_callbacks::{Rejection, SecureCallbackLayer, Secrets};
///
/// // Answer every rejection with a bare 401, without a body.
/// let layer = SecureCallbackLayer::new(Secrets::new()).on_rejection(|_r: Rejection| {
///     Response::builder().status(StatusCode::UNAUTHORIZED).body(Bytes::new()).unwrap()
/// });
/// ```
pub trait OnRejection: Send + Sync + 'static {
    /// The response sent for `rejection`. The layer adds `rejection` to its extensions.
    fn response(&self, rejection: Rejection) -> Response<Bytes>;

    /// The same, with the facts that point to the cause; what the layer calls. The default
    /// ignores `details`: implement it to put them in your own logs or responses. The layer adds
    /// `details` to the response's extensions either way.
    fn response_with_details(
        &self,
        rejection: Rejection,
        details: &crate::RejectionDetails,
    ) -> Response<Bytes> {
        let _ = details;
        self.response(rejection)
    }
}

impl<F> OnRejection for F
where
    F: Fn(Rejection) -> Response<Bytes> + Send + Sync + 'static,
{
    fn response(&self, rejection: Rejection) -> Response<Bytes> {
        self(rejection)
    }
}

/// The default rejection response: the rejection's status, `Content-Type: application/json`,
/// a body `{"error":"<code>"}`, `Retry-After` on 503 so that Vonage's retry is expected, and on
/// 401 a `WWW-Authenticate: Bearer error="invalid_token", error_description="<code>"` challenge
/// (RFC 6750 §3; a bare `Bearer` when no token was sent).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection {
    missing_token_status: Option<StatusCode>,
}

impl DefaultRejection {
    /// The status sent for [`Rejection::MissingToken`] (default 503).
    pub fn missing_token_status(mut self, status: StatusCode) -> Self {
        self.missing_token_status = Some(status);
        self
    }
}

/// RFC 6750 §3: the Bearer challenge, with `invalid_token` and the rejection's code when a token
/// was sent, bare when none was.
fn www_authenticate(rejection: Rejection) -> HeaderValue {
    if rejection == Rejection::MissingToken {
        return HeaderValue::from_static("Bearer");
    }
    let value = format!(
        r#"Bearer error="invalid_token", error_description="{}""#,
        rejection.code()
    );
    // Codes are lowercase ASCII and underscores: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
}

/// Seconds Vonage is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("5");

impl OnRejection for DefaultRejection {
    fn response(&self, rejection: Rejection) -> Response<Bytes> {
        let status = match (rejection, self.missing_token_status) {
            (Rejection::MissingToken, Some(status)) => status,
            _ => rejection.status(),
        };
        let mut response = Response::new(Bytes::from_static(rejection.json_body().as_bytes()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, RETRY_AFTER_SECONDS);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, www_authenticate(rejection));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_bodies_and_parsing_agree() {
        for &r in Rejection::ALL {
            let parsed: serde_json::Value = serde_json::from_str(r.json_body()).unwrap();
            assert_eq!(parsed["error"], r.code());
            assert_eq!(Rejection::from_code(r.code()), Some(r));
            assert_eq!(r.to_string(), r.code());
        }
        assert_eq!(Rejection::from_code("nope"), None);
    }

    /// The table's order is the layer's: the header checks in `Check` order, the replay
    /// look-up, the body (read, then hashed), the reservation.
    #[test]
    fn all_is_in_the_order_of_the_checks() {
        use Rejection::*;
        let layer_order = [
            BodyTooLarge,
            MissingToken,
            MalformedToken,
            UnsupportedAlgorithm,
            UnknownApiKey,
            BadSignature,
            BadIssuer,
            TokenFromFuture,
            StaleToken,
            MissingPayloadHash,
            ReplayedToken,
            BodyReadError,
            PayloadHashMismatch,
            DuplicateInFlight,
        ];
        let position = |r: &Rejection| Rejection::ALL.iter().position(|a| a == r).unwrap();
        let positions: Vec<usize> = layer_order.iter().map(position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_eq!(Rejection::ALL.len(), 19);
    }

    #[test]
    fn default_response_shape() {
        let res = DefaultRejection::default().response(Rejection::MissingToken);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");

        let res = DefaultRejection::default().response(Rejection::BadSignature);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(res.body().as_ref(), br#"{"error":"bad_signature"}"#);

        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token", error_description="bad_signature""#
        );
        let res = DefaultRejection::default().response(Rejection::ReplayedToken);
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());

        let res = DefaultRejection::default()
            .missing_token_status(StatusCode::UNAUTHORIZED)
            .response(Rejection::MissingToken);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
