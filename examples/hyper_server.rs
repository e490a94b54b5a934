//! Raw hyper 1.x, no framework: the layer wraps a plain tower service, served with hyper's
//! HTTP/1 connection builder through hyper-util's tower adapter.
//!
//! ```text
//! VONAGE_API_KEY=... VONAGE_SIGNATURE_SECRET=... cargo run --example hyper_server
//! ```

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;
use vonage_secure_callbacks::{Secrets, SecureCallbackLayer, VerifiedBody, VonageClaims};

/// The application: sees only verified callbacks.
async fn handle(request: Request<VerifiedBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let claims = request
        .extensions()
        .get::<VonageClaims>()
        .cloned()
        .expect("the layer puts the claims in every request it lets through");
    let body = request.into_body().into_bytes();
    println!(
        "callback {} from {}: {} bytes",
        claims.jti(),
        claims.api_key(),
        body.len()
    );
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Both variables, or a clear error naming the missing one: never a built-in secret.
    let secrets = Secrets::from_env().unwrap_or_else(|err| {
        eprintln!("error: {err}");
        std::process::exit(2)
    });

    // The timeout sits outside the layer, so that a client trickling its body is cut off too.
    let service = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .layer(SecureCallbackLayer::new(secrets))
        .service_fn(handle);

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {err}");
            }
        });
    }
}
