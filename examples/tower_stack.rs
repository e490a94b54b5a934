//! A tonic-style tower stack: request ids, tracing and a timeout from tower-http around the
//! verification layer, composed with `ServiceBuilder` and served by hyper.
//!
//! The timeout sits outside the layer, so a client that trickles its body is cut off too; the
//! request id is set first, so rejections carry it as well.
//!
//! ```text
//! RUST_LOG=tower_http=debug,vonage_secure_callbacks=info cargo run --example tower_stack
//! ```

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use vonage_secure_callbacks::{Secrets, SecureCallbackLayer, VerifiedBody, VonageClaims};

async fn handle(request: Request<VerifiedBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let jti = request
        .extensions()
        .get::<VonageClaims>()
        .map(|claims| claims.jti().to_owned())
        .unwrap_or_default();
    Ok(Response::new(Full::new(Bytes::from(jti))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // Both variables, or a clear error naming the missing one: never a built-in secret.
    let secrets = Secrets::from_env().unwrap_or_else(|err| {
        eprintln!("error: {err}");
        std::process::exit(2)
    });

    let service = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .layer(SecureCallbackLayer::new(secrets))
        .service_fn(handle);

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3002".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
