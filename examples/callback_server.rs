//! The main job: an axum server that accepts Vonage signed callbacks on a POST to any path.
//!
//! ```text
//! cargo run --example callback_server
//! ```
//!
//! Environment:
//! - `LISTEN_ADDR` (default `127.0.0.1:3000`);
//! - `VONAGE_API_KEY` and `VONAGE_SIGNATURE_SECRET`: your project's key and signature secret
//!   (and `VONAGE_SIGNATURE_SECRET_PREVIOUS` while rotating). With neither, the server runs in
//!   development mode: it makes up a secret for this run and says so. With only one of them it
//!   refuses to start.
//! - `REQUEST_TIMEOUT_SECS` (default 10): the whole request, body included, must arrive within
//!   this, so a client that trickles its body cannot hold a connection.
//! - `REPLAY_STORE`: where delivered callbacks are remembered, so that a replay is refused:
//!   - `sqlite:PATH`: in the file at `PATH`, across restarts and for every process of this host
//!     (the default in production mode, at `sqlite:replay-window.sqlite3`);
//!   - `memory`: in this process only, forgotten at restart (the default in development mode);
//!   - `redis://…` or `rediss://…` (with `--features redis`): in Redis, for many hosts;
//!   - `postgres://…` (with `--features postgres`): in a PostgreSQL table, for many hosts.
//!
//!   The store in use is printed at start; a file that cannot be used stops the server with an
//!   error naming it.
//! - `REPLAY_IN_FLIGHT_TTL_SECS` (default 60): how long a callback being handled holds its `jti`;
//!   longer than your slowest handler.
//! - `VONAGE_SMS_SIGNATURE_METHOD` (`md5hash`, `md5`, `sha1`, `sha256` or `sha512`: the
//!   account's setting): accept signed inbound SMS and delivery receipts at `/vonage/sms` (GET, a
//!   form or a JSON POST), with the same secrets and replay store. Development mode uses
//!   `sha256` when it is not set.
//!
//! In development mode it prints `curl` commands carrying a freshly signed demo SMS and a demo
//! callback; run one in another terminal and the server answers 200 with what was verified. Run
//! it twice: the second time is a replay, refused with 409. With real credentials nothing signed
//! is printed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::{any, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use tower_http::timeout::TimeoutLayer;
use tracing::info;
use vonage_secure_callbacks::events::VideoEvent;
use vonage_secure_callbacks::replay::ReplayStore;
use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier, VerifiedSms};
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{
    Clock, EnvError, Secret, Secrets, SecureCallbackLayer, VonageClaims,
};

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

/// Answers each verified SMS request with what was verified (the message's sender and text
/// are the handler's to use; here only their presence is shown).
async fn on_sms(Extension(sms): Extension<VerifiedSms>) -> Json<Value> {
    info!(api_key = %sms.api_key(), nonce = %sms.replay_id(), "verified sms");
    let names: Vec<&str> = sms.params().iter().map(|(name, _)| name).collect();
    Json(json!({
        "verified": true,
        "api_key": sms.api_key(),
        "replay_id": sms.replay_id(),
        "timestamp": sms.timestamp(),
        "parameters": names,
    }))
}

/// Development mode's secret, made up for this run, and a signer for it.
struct Development {
    signer: CallbackSigner,
    secret: String,
}

/// The project's secrets from the environment; with none set, a secret made up for this run
/// (development mode). Half a configuration is an error, never a fallback.
fn configuration() -> Result<(Secrets, Option<Development>), Box<dyn std::error::Error>> {
    match Secrets::from_env() {
        Ok(secrets) => Ok((secrets, None)),
        Err(EnvError::NotSet) => {
            let mut secret = String::from("dev-");
            while secret.len() < 44 {
                let mut h = RandomState::new().build_hasher();
                h.write_usize(secret.len());
                secret.push_str(&format!("{:016x}", h.finish()));
            }
            let secrets = Secrets::new().project(DEV_API_KEY, Secret::new(&secret)?);
            let signer = CallbackSigner::new(DEV_API_KEY, &secret);
            Ok((secrets, Some(Development { signer, secret })))
        }
        Err(err) => Err(err.into()),
    }
}

const DEV_API_KEY: &str = "dev-api-key";

/// Every POST path answers with the verified claims; `/vonage/sms`, when SMS is configured,
/// with the verified SMS. Both share one replay store.
/// The timeout sits outside the layers, so that it covers reading the body too.
fn app<R: ReplayStore>(layer: SecureCallbackLayer, store: R, sms: Option<SmsVerifier>) -> Router {
    let timeout = std::env::var("REQUEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let callbacks = Router::new()
        .route("/", post(on_callback))
        .route("/{*path}", post(on_callback))
        .route_layer(layer.replay_store(store.clone()));
    let router = match sms {
        Some(verifier) => Router::new()
            .route("/vonage/sms", any(on_sms))
            .route_layer(SecureCallbackLayer::sms(verifier).replay_store(store))
            .merge(callbacks),
        None => callbacks,
    };
    router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(timeout),
    ))
}

/// Where the replay window is kept, from `REPLAY_STORE`.
enum StoreSetting {
    Memory,
    Sqlite(std::path::PathBuf),
    Redis(String),
    Postgres(String),
}

/// Production keeps its window in a file unless told otherwise: a restart must not reopen it.
const DEFAULT_FILE: &str = "replay-window.sqlite3";

fn store_setting(production: bool) -> Result<StoreSetting, String> {
    if std::env::var_os("REDIS_URL").is_some() && std::env::var_os("REPLAY_STORE").is_none() {
        return Err("REDIS_URL is no longer read: set REPLAY_STORE=redis://… instead".into());
    }
    let setting = std::env::var("REPLAY_STORE").unwrap_or_default();
    Ok(match setting.as_str() {
        "" if production => StoreSetting::Sqlite(DEFAULT_FILE.into()),
        "" | "memory" => StoreSetting::Memory,
        url if url.starts_with("redis://") || url.starts_with("rediss://") => {
            StoreSetting::Redis(url.to_owned())
        }
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            StoreSetting::Postgres(url.to_owned())
        }
        other => match other.strip_prefix("sqlite:") {
            Some(path) if !path.is_empty() => StoreSetting::Sqlite(path.into()),
            _ => {
                return Err(
                    "REPLAY_STORE must be memory, sqlite:PATH, redis://… or postgres://… (it is none of them)".into(),
                )
            }
        },
    })
}

/// `VONAGE_SMS_SIGNATURE_METHOD`, the account's SMS signature method; `sha256` for the
/// development mode's demo when unset.
fn sms_method(development: bool) -> Result<Option<SignatureMethod>, String> {
    match std::env::var("VONAGE_SMS_SIGNATURE_METHOD") {
        Ok(name) => name
            .parse()
            .map(Some)
            .map_err(|err| format!("VONAGE_SMS_SIGNATURE_METHOD: {err}")),
        Err(_) if development => Ok(Some(SignatureMethod::HmacSha256)),
        Err(_) => Ok(None),
    }
}

/// A fresh nonce for the demo SMS: unique per run.
fn fresh_nonce() -> String {
    vonage_secure_callbacks::test_util::fresh_jti()
}

fn in_flight_ttl() -> Result<Duration, String> {
    match std::env::var("REPLAY_IN_FLIGHT_TTL_SECS") {
        Err(_) => Ok(vonage_secure_callbacks::replay::DEFAULT_IN_FLIGHT_TTL),
        Ok(s) => match s.parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => Err("REPLAY_IN_FLIGHT_TTL_SECS must be a whole number of seconds above 0".into()),
        },
    }
}

/// The app with the chosen replay store, saying at start which one it is.
async fn with_store(
    layer: SecureCallbackLayer,
    sms: Option<SmsVerifier>,
    setting: StoreSetting,
    ttl: Duration,
) -> Result<Router, Box<dyn std::error::Error>> {
    Ok(match setting {
        StoreSetting::Memory => {
            println!("replay store: in memory (this process only, forgotten at restart)");
            // The layer's own store: the in-flight TTL is a setting of the store.
            let store = vonage_secure_callbacks::MemoryReplayStore::builder()
                .in_flight_ttl(ttl)
                .build();
            app(layer, store, sms)
        }
        StoreSetting::Sqlite(path) => {
            let store = vonage_secure_callbacks::replay::SqliteReplayStore::builder(&path)
                .in_flight_ttl(ttl)
                .open()?;
            let shown = std::fs::canonicalize(&path).unwrap_or(path);
            println!(
                "replay store: SQLite file {} (kept across restarts, shared by every process of this host)",
                shown.display()
            );
            app(layer, store, sms)
        }
        StoreSetting::Redis(url) => with_redis(layer, sms, &url, ttl).await?,
        StoreSetting::Postgres(url) => with_postgres(layer, sms, &url, ttl).await?,
    })
}

/// Where a URL points, without the credentials it may carry.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn shown_target(url: &str) -> &str {
    url.rsplit('@').next().unwrap_or(url)
}

#[cfg(feature = "redis")]
async fn with_redis(
    layer: SecureCallbackLayer,
    sms: Option<SmsVerifier>,
    url: &str,
    ttl: Duration,
) -> Result<Router, Box<dyn std::error::Error>> {
    let store = vonage_secure_callbacks::replay::RedisReplayStore::builder(url)
        .in_flight_ttl(ttl)
        .connect()
        .await?;
    println!(
        "replay store: Redis at {} (shared by every instance)",
        shown_target(url)
    );
    Ok(app(layer, store, sms))
}

#[cfg(not(feature = "redis"))]
async fn with_redis(
    _layer: SecureCallbackLayer,
    _sms: Option<SmsVerifier>,
    _url: &str,
    _ttl: Duration,
) -> Result<Router, Box<dyn std::error::Error>> {
    Err("REPLAY_STORE is a Redis URL, but this build has no Redis store: run with `--features redis`".into())
}

#[cfg(feature = "postgres")]
async fn with_postgres(
    layer: SecureCallbackLayer,
    sms: Option<SmsVerifier>,
    url: &str,
    ttl: Duration,
) -> Result<Router, Box<dyn std::error::Error>> {
    let store = vonage_secure_callbacks::replay::PostgresReplayStore::builder(url)
        .in_flight_ttl(ttl)
        .connect()
        .await?;
    println!(
        "replay store: PostgreSQL at {} (shared by every instance)",
        shown_target(url)
    );
    Ok(app(layer, store, sms))
}

#[cfg(not(feature = "postgres"))]
async fn with_postgres(
    _layer: SecureCallbackLayer,
    _sms: Option<SmsVerifier>,
    _url: &str,
    _ttl: Duration,
) -> Result<Router, Box<dyn std::error::Error>> {
    Err("REPLAY_STORE is a PostgreSQL URL, but this build has no PostgreSQL store: run with `--features postgres`".into())
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
    let (secrets, development) = configuration().unwrap_or_else(|err| {
        eprintln!("error: {err}");
        std::process::exit(2)
    });
    if development.is_some() {
        println!(
            "VONAGE_API_KEY / VONAGE_SIGNATURE_SECRET not set: development mode, with a \
             development secret made up for this run (api key {DEV_API_KEY:?}). Set both to \
             accept your project's callbacks."
        );
    }

    let (setting, ttl, sms_method) = store_setting(development.is_none())
        .and_then(|setting| {
            Ok((
                setting,
                in_flight_ttl()?,
                sms_method(development.is_some())?,
            ))
        })
        .unwrap_or_else(|err| {
            eprintln!("error: {err}");
            std::process::exit(2)
        });
    let sms = sms_method.map(|method| {
        println!("SMS: signed requests ({method}) accepted at /vonage/sms");
        SmsVerifier::new(secrets.clone(), method)
    });
    let layer = SecureCallbackLayer::new(secrets);
    let app = with_store(layer, sms, setting, ttl)
        .await
        .unwrap_or_else(|err| {
            eprintln!("error: {err}");
            std::process::exit(2)
        });

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;

    println!("listening on http://{local}");
    match development {
        // Demos signed now with the made-up secret, byte-exact in the printed commands.
        Some(Development { signer, secret }) => {
            if let Some(method) = sms_method {
                let mut sms = SmsParams::from_pairs([
                    ("msisdn", "447700900001"),
                    ("to", "447700900000"),
                    ("messageId", "0A0000000123ABCD1"),
                    ("text", "Hello from the demo"),
                    ("type", "text"),
                    ("api-key", DEV_API_KEY),
                ]);
                sms.set("nonce", fresh_nonce());
                sms.set(
                    "timestamp",
                    vonage_secure_callbacks::SystemClock.now().to_string(),
                );
                let sig = method.sign(&sms, secret.as_bytes());
                sms.set("sig", sig);
                println!("try a signed demo SMS (accepted once; a second run is a replay):");
                println!("curl -sS 'http://{local}/vonage/sms?{}'", sms.to_form());
            }
            let body = r#"{"sessionId":"2_MX4xMDB-fn4","projectId":"100","event":"connectionCreated","timestamp":1470257688309}"#;
            let authorization = signer.authorization(body.as_bytes());
            println!("try a signed demo callback (it is accepted once; a second run is a replay):");
            println!(
                "curl -sS -X POST http://{local}/vonage/session -H 'Content-Type: application/json' \
                 -H 'Authorization: {authorization}' --data-raw '{body}'"
            );
        }
        // Never print a token signed with a real secret: it would be a replayable callback.
        None => println!("production mode: accepting callbacks signed with the configured secrets"),
    }

    axum::serve(listener, app).await?;
    Ok(())
}
