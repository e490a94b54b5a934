//! Exactly-once effects with the PostgreSQL store: the handler inserts one row per callback and
//! marks the callback delivered in the same transaction, so the row and the mark commit
//! together or not at all. Kill the process or the database connection at any point, let
//! Vonage retry, and each callback has left exactly one row.
//!
//! ```text
//! DATABASE_URL=postgres://app@127.0.0.1/app cargo run --example exactly_once --features postgres
//! ```
//!
//! Environment:
//! - `DATABASE_URL` (required): the database; the store's table and `callback_effects` are
//!   created there when missing.
//! - `VONAGE_API_KEY` and `VONAGE_SIGNATURE_SECRET`: the project's key and secret.
//! - `LISTEN_ADDR` (default `127.0.0.1:3000`), `REPLAY_IN_FLIGHT_TTL_SECS` (default 60).
//! - `EXACTLY_ONCE_PAUSE` (`before-commit:MS` or `after-commit:MS`): waits that long at that
//!   point of each callback, to watch a kill there change nothing.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use vonage_secure_callbacks::replay::{Lease, PostgresReplayStore};
use vonage_secure_callbacks::{Secrets, SecureCallbackLayer, VonageClaims};

/// Where a demonstration pause happens.
#[derive(Clone, Copy, PartialEq)]
enum Pause {
    BeforeCommit(Duration),
    AfterCommit(Duration),
    None,
}

#[derive(Clone)]
struct App {
    store: PostgresReplayStore,
    pause: Pause,
}

/// One row per callback, written with the delivery mark in one transaction.
async fn on_callback(
    State(app): State<App>,
    Extension(lease): Extension<Lease>,
    Extension(claims): Extension<VonageClaims>,
    body: Bytes,
) -> Result<Json<Value>, StatusCode> {
    // Any failure is a 503: nothing was committed, and Vonage retries.
    let fail = |_| StatusCode::SERVICE_UNAVAILABLE;
    let mut tx = app.store.pool().begin().await.map_err(fail)?;
    sqlx::query("INSERT INTO callback_effects (jti, body) VALUES ($1, $2)")
        .bind(claims.jti())
        .bind(body.as_ref())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    app.store
        .mark_delivered(&mut *tx, &lease)
        .await
        .map_err(fail)?;
    if let Pause::BeforeCommit(wait) = app.pause {
        tokio::time::sleep(wait).await;
    }
    tx.commit().await.map_err(fail)?;
    if let Pause::AfterCommit(wait) = app.pause {
        tokio::time::sleep(wait).await;
    }
    Ok(Json(json!({ "jti": claims.jti(), "stored": true })))
}

fn pause() -> Result<Pause, String> {
    let Ok(setting) = std::env::var("EXACTLY_ONCE_PAUSE") else {
        return Ok(Pause::None);
    };
    let bad =
        || format!("EXACTLY_ONCE_PAUSE={setting:?}: give before-commit:MS or after-commit:MS");
    let (at, ms) = setting.split_once(':').ok_or_else(bad)?;
    let wait = Duration::from_millis(ms.parse().map_err(|_| bad())?);
    match at {
        "before-commit" => Ok(Pause::BeforeCommit(wait)),
        "after-commit" => Ok(Pause::AfterCommit(wait)),
        _ => Err(bad()),
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let secrets = Secrets::from_env()?;
    let ttl = std::env::var("REPLAY_IN_FLIGHT_TTL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let store = PostgresReplayStore::builder(&url)
        .in_flight_ttl(Duration::from_secs(ttl))
        .connect()
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS callback_effects (
             jti text NOT NULL,           -- no unique constraint: the mark alone keeps it once
             body bytea NOT NULL,
             stored_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .execute(store.pool())
    .await?;
    let app = App {
        store: store.clone(),
        pause: pause()?,
    };
    let router = Router::new()
        .route("/{*path}", post(on_callback))
        .layer(SecureCallbackLayer::new(secrets).replay_store(store))
        .with_state(app);
    let addr: SocketAddr = std::env::var("LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("ready: one row per callback in callback_effects");
    axum::serve(listener, router).await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("exactly_once: {err}");
        std::process::exit(2);
    }
}
