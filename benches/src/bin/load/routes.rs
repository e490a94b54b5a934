//! The routes both modes compare, and what they share: the body, the secret, the naive
//! middleware people write by hand.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use vonage_secure_callbacks::{Secret, Secrets};

pub const API_KEY: &str = "a1b2c3d4";
pub const SECRET: &str = "load-test-signature-secret-load-test-0001";

pub fn secrets() -> Secrets {
    Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap())
}

/// A JSON-looking body of exactly `len` bytes.
pub fn body(len: usize) -> Bytes {
    let mut b = br#"{"sessionId":"2_MX4xMDB-fn4","event":"connectionCreated","pad":""#.to_vec();
    b.resize(len.saturating_sub(2), b'x');
    b.extend_from_slice(br#""}"#);
    b.truncate(len);
    Bytes::from(b)
}

pub async fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// A route reading its body: what any body-consuming handler pays in hyper and axum.
pub async fn read_body(body: Bytes) -> StatusCode {
    drop(body);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize, Clone)]
struct NaiveClaims {
    payload_hash: String,
    api_key: String,
}

/// The middleware people write by hand: read the body, `jsonwebtoken::decode`, hex-compare the
/// hash, rebuild the request.
pub async fn naive(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let Ok(data) = jsonwebtoken::decode::<NaiveClaims>(token, &key, &validation) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if hex != data.claims.payload_hash || data.claims.api_key != API_KEY {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(data.claims);
    next.run(request).await
}

/// The naive middleware uses jsonwebtoken's process-wide backend: name it, as a careful user
/// must when a build has both.
pub fn install_jsonwebtoken_provider() {
    #[cfg(feature = "aws_lc_rs")]
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
    );
}
