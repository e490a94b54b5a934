//! A tonic gRPC service and the Vonage callback route on one server and one port: the layer
//! guards the callback route only, never the gRPC stream (buffering a stream to hash it would be
//! wrong, and gRPC calls carry no Vonage token).
//!
//! ```text
//! VONAGE_API_KEY=... VONAGE_SIGNATURE_SECRET=... cargo run --example grpc_and_callbacks
//! grpcurl -plaintext 127.0.0.1:3003 grpc.health.v1.Health/Check   # the gRPC side
//! ```
//!
//! tonic's `Routes` turn into an axum `Router`; the callback routes are merged beside them with
//! the layer applied by `route_layer`. `axum::serve` speaks HTTP/1 and HTTP/2 on one port, so
//! gRPC clients and Vonage reach the same listener.

use std::time::Duration;

use axum::routing::post;
use axum::Router;
use http::StatusCode;
use tonic_health::ServingStatus;
use tower_http::timeout::TimeoutLayer;
use vonage_secure_callbacks::{Secrets, SecureCallbackLayer, VonageClaims};

async fn on_callback(claims: VonageClaims, body: String) -> StatusCode {
    println!("callback {} ({} bytes)", claims.jti(), body.len());
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secrets = Secrets::from_env().unwrap_or_else(|err| {
        eprintln!("error: {err}");
        std::process::exit(2)
    });

    // The gRPC side: the standard health service, reporting the whole server as serving.
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let grpc: Router = tonic::service::Routes::new(health).into_axum_router();

    // The callback side: only these routes are behind the layer (and a request timeout).
    let callbacks = Router::new()
        .route("/vonage/{*event}", post(on_callback))
        .route_layer(SecureCallbackLayer::new(secrets))
        .route_layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ));

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3003".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("production mode: gRPC health and signed callbacks on one port");
    axum::serve(listener, grpc.merge(callbacks)).await?;
    Ok(())
}
