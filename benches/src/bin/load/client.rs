//! The load client's side, for both modes: one connection, one signed POST.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;

pub use vonage_callbacks_bench::connect;

/// POSTs `body` to `path` with `authorization`; the answer must be 204. Returns how long the
/// exchange took.
pub async fn post_signed(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    authorization: &str,
    body: &Bytes,
) -> Duration {
    let request = http::Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header("authorization", authorization)
        .body(Full::new(body.clone()))
        .unwrap();
    let sent = Instant::now();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT, "{path} refused a request");
    sent.elapsed()
}
