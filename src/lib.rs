//! Tower middleware that accepts Vonage's signed callbacks and rejects forged, tampered,
//! replayed or oversized ones.
//!
//! Vonage signs each callback (Video API secure callbacks; Messages, Voice and Verify v2
//! webhooks) with `Authorization: Bearer <JWT>`: HS256 keyed with the project's signature
//! secret, claims `iat`, `jti`, `iss`, `api_key` and `payload_hash`, the SHA-256 of the raw body.
//! [`SecureCallbackLayer`] checks all of it before your handler runs:
//!
//! ```
//! use axum::{routing::post, Extension, Router};
//! use bytes::Bytes;
//! use http::StatusCode;
//! use vonage_secure_callbacks::{Secret, SecureCallbackLayer, Secrets, VonageClaims};
//!
//! async fn on_session(Extension(claims): Extension<VonageClaims>, body: Bytes) -> StatusCode {
//!     // Only verified callbacks get here; `body` holds the exact bytes that were hashed.
//!     let _ = (claims.jti(), body);
//!     StatusCode::OK
//! }
//!
//! let secret = Secret::new("a-signature-secret-of-32-bytes-or-more").unwrap();
//! let layer = SecureCallbackLayer::new(Secrets::new().project("a1b2c3d", secret));
//! let app: Router = Router::new().route("/vonage/session", post(on_session)).layer(layer);
//! ```
//!
//! Each rejection is a response with a JSON body `{"error":"<code>"}`; see [`Rejection`].
//!
//! # Features
//! This is the one list of the crate's features (`Cargo.toml` and the README point here).
//! - `aws_lc_rs` (default) or `rust_crypto`: the crypto backend of jsonwebtoken. The crate names
//!   its backend explicitly, so enabling both never makes jsonwebtoken panic at run time (aws-lc
//!   is then used); enabling neither does not compile. aws-lc is the default because
//!   jsonwebtoken's RustCrypto backend brings in the `rsa` crate, which has an advisory with no
//!   fixed version (RUSTSEC-2023-0071); this crate never uses RSA, but a default dependency
//!   tree with no advisory is simpler to audit.
//! - `tracing`: an event naming the reason of each rejection (never the secret, token or body).
//! - `metrics`: counters, histograms and gauges through the `metrics` facade; see [`metrics`].
//! - `test-util`: [`test_util::CallbackSigner`], to sign callbacks in your own tests, and
//!   [`test_util::jwt_attacks`] (with `sms`, `sms_attacks`), suites of hostile requests with the
//!   answer each must get, to check a deployment.
//! - `events`: [`events::VideoEvent`], typed Video callback events.
//! - `axum`: [`VonageClaims`] is an axum extractor (also as `Option`); with `events`,
//!   [`extract::VideoCallback`] extracts the claims and the typed event.
//! - `sms`: [`sms`], the SMS API's `sig` signatures (inbound messages, delivery receipts), with
//!   [`SecureCallbackLayer::sms`]; MD5, SHA-1 and SHA-512 from RustCrypto (`md-5`, `sha1`,
//!   `hmac`), since jsonwebtoken has none of them.
//! - `sqlite`: [`replay::SqliteReplayStore`], replay protection in one file: kept across
//!   restarts and crashes, shared by every process of the host.
//! - `redis`: [`replay::RedisReplayStore`], replay protection shared across instances;
//!   `redis-cluster` for a Redis Cluster, `redis-tls` for `rediss://` (rustls).
//! - `postgres`: [`replay::PostgresReplayStore`], replay protection in the app's own PostgreSQL
//!   (sqlx's pool), shared across instances, with exactly-once handlers
//!   ([`PostgresReplayStore::mark_delivered`](replay::PostgresReplayStore::mark_delivered));
//!   `postgres-tls` for TLS to the database (rustls; `sslmode=verify-full` and `sslrootcert` in
//!   the URL).
//!
//! # Other Vonage webhooks
//! Messages, Voice and Verify v2 sign their webhooks with the same scheme: the layer serves them
//! unchanged. The SMS API signs with a `sig` parameter instead: `sms` (feature `sms`) and
//! `SecureCallbackLayer::sms`. Voice's `answer_url` and other GET webhooks have no body; Vonage then hashes the
//! query parameters ([`query_payload`]): opt in with
//! [`CallbackVerifier::verify_get_query`].
//!
//! # Replay protection and delivery
//! A delivered `jti` is remembered by a [`replay::ReplayStore`]: by default the process-wide
//! [`MemoryReplayStore::shared`], whatever number of layers the process builds, forgotten at
//! restart; across restarts and the processes of one host, `replay::SqliteReplayStore`
//! (feature `sqlite`); across hosts, `replay::RedisReplayStore` (feature `redis`) or `replay::PostgresReplayStore`
//! (feature `postgres`). Delivery is at least once: a request dropped while its handler runs
//! releases its `jti`, and Vonage's retry runs the handler again, so handlers must be idempotent
//! ([`guide::handlers`] shows one keyed by `jti`), or, with PostgreSQL, commit the delivery mark
//! with their writes ([`guide::replay_stores`]).
//!
//! # Diagnosis
//! [`CallbackVerifier::explain`] reports every check the layer runs, in its order, with the
//! facts each one saw; the `vonage-callbacks` command prints that report.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "rust_crypto", feature = "aws_lc_rs")))]
compile_error!("enable one crypto backend: feature `aws_lc_rs` (default) or `rust_crypto`");

/// The error type bodies must convert into, as in tower and hyper.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

mod body;
mod buffer;
mod claims;
mod clock;
pub mod dangerous;
mod diagnosis;
mod env;
#[cfg(feature = "events")]
pub mod events;
mod explain;
#[cfg(feature = "axum")]
pub mod extract;
mod future;
pub mod guide;
mod hex;
mod keyed;
mod layer;
#[cfg(feature = "metrics")]
pub mod metrics;
mod payload;
mod random;
mod rejection;
pub mod replay;
mod scheme;
mod secrets;
mod service;
mod shared;
#[cfg(feature = "sms")]
pub mod sms;
mod stopwatch;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
mod token;
mod verify;

pub use body::{ResponseBody, VerifiedBody};
pub use claims::{SecretUsed, VonageClaims};
pub use clock::{Clock, FixedClock, SystemClock};
pub use diagnosis::RejectionDetails;
pub use env::{EnvError, API_KEY_VAR, PREVIOUS_SECRET_VAR, SECRET_VAR};
pub use explain::{Check, Report, Status};
pub use future::ResponseFuture;
pub use layer::SecureCallbackLayer;
pub use payload::{payload_hash, query_payload};
pub use rejection::{DefaultRejection, OnRejection, Rejection};
pub use replay::MemoryReplayStore;
pub use scheme::Scheme;
pub use secrets::{Secret, SecretError, Secrets, MIN_SECRET_LEN};
pub use service::SecureCallbackService;
pub use verify::{
    CallbackVerifier, DEFAULT_BODY_LIMIT, DEFAULT_CLOCK_SKEW, DEFAULT_ISSUER, DEFAULT_MAX_AGE,
};

/// Compiles the README's examples as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
