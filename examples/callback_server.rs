//! The main job: an axum server that accepts Vonage signed callbacks on a POST to any path.
//!
//! ```text
//! cargo run --example callback_server
//! ```
//!
//! Environment:
//! - `LISTEN_ADDR` (default `127.0.0.1:3000`);
//! - `VONAGE_API_KEY` and `VONAGE_SIGNATURE_SECRET`: your project's key and signature secret.
//!   Without them a development secret is made up, and the server says so.
//! - `REDIS_URL` (with `--features redis`): keep replay protection in Redis, shared by every
//!   instance, instead of this process's memory.
//!
//! At start it prints a `curl` command carrying a freshly signed demo callback; run it in another
//! terminal and the server answers 200 with the verified claims. Run it twice: the second time is
//! a replay, refused with 409.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;

use axum::routing::post;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tracing::info;
use vonage_secure_callbacks::events::VideoEvent;
use vonage_secure_callbacks::replay::ReplayStore;
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{Secret, Secrets, SecureCallbackLayer, VonageClaims};

/// Answers each verified callback with the claims that were verified, and logs the Video
/// event it carries by family and type.
async fn on_callback(Extension(claims): Extension<VonageClaims>, body: Bytes) -> Json<Value> {
    let (family, kind) = match VideoEvent::parse(&body) {
        Ok(event) => (event.family(), event.kind().to_owned()),
        Err(_) => ("not-json", String::new()),
    };
    info!(
        api_key = %claims.api_key(),
        jti = %claims.jti(),
        bytes = body.len(),
        family,
        kind = %kind,
        "verified callback"
    );
    Json(json!({
        "verified": true,
        "api_key": claims.api_key(),
        "jti": claims.jti(),
        "iat": claims.iat(),
        "application_id": claims.application_id(),
        "body_bytes": body.len(),
        "event": {"family": family, "kind": kind},
    }))
}

/// The project's credentials, or a made-up development pair.
fn credentials() -> (String, String, bool) {
    match (
        std::env::var("VONAGE_API_KEY"),
        std::env::var("VONAGE_SIGNATURE_SECRET"),
    ) {
        (Ok(key), Ok(secret)) if !key.is_empty() && !secret.is_empty() => (key, secret, false),
        _ => {
            let mut secret = String::from("dev-");
            while secret.len() < 44 {
                let mut h = RandomState::new().build_hasher();
                h.write_usize(secret.len());
                secret.push_str(&format!("{:016x}", h.finish()));
            }
            ("dev-api-key".to_owned(), secret, true)
        }
    }
}

/// Every POST path answers with the verified claims.
fn app<R: ReplayStore>(layer: SecureCallbackLayer<R>) -> Router {
    Router::new()
        .route("/", post(on_callback))
        .route("/{*path}", post(on_callback))
        .layer(layer)
}

#[cfg(feature = "redis")]
async fn with_redis(
    layer: SecureCallbackLayer,
    url: &str,
) -> Result<Router, Box<dyn std::error::Error>> {
    let store = vonage_secure_callbacks::replay::RedisReplayStore::connect(url).await?;
    // The URL may carry a password: say where, not how.
    let target = url.rsplit('@').next().unwrap_or(url);
    println!("replay store: Redis at {target} (shared by every instance)");
    Ok(app(layer.replay_store(store)))
}

#[cfg(not(feature = "redis"))]
async fn with_redis(
    _layer: SecureCallbackLayer,
    _url: &str,
) -> Result<Router, Box<dyn std::error::Error>> {
    Err("REDIS_URL is set, but this build has no Redis store: run with `--features redis`".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let addr: SocketAddr = std::env::var("LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()?;
    let (api_key, secret, development) = credentials();
    if development {
        println!(
            "VONAGE_API_KEY / VONAGE_SIGNATURE_SECRET not set: using a development secret made \
             up for this run (api key {api_key:?}). Set both to accept your project's callbacks."
        );
    }

    let layer =
        SecureCallbackLayer::new(Secrets::new().project(api_key.clone(), Secret::new(&secret)?));
    let app = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => with_redis(layer, &url).await?,
        _ => {
            println!("replay store: in memory (this process only)");
            app(layer)
        }
    };

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;

    // A demo callback signed now with the same secret, byte-exact in the printed command.
    let body = r#"{"sessionId":"2_MX4xMDB-fn4","projectId":"100","event":"connectionCreated","timestamp":1470257688309}"#;
    let authorization = CallbackSigner::new(&api_key, &secret).authorization(body.as_bytes());
    println!("listening on http://{local}");
    println!("try a signed demo callback (it is accepted once; a second run is a replay):");
    println!(
        "curl -sS -X POST http://{local}/vonage/session -H 'Content-Type: application/json' \
         -H 'Authorization: {authorization}' --data-raw '{body}'"
    );

    axum::serve(listener, app).await?;
    Ok(())
}
