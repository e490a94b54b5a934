//! The tonic-style stack as it should be used: `examples/grpc_and_callbacks` serves a gRPC
//! service and the callback route on one port, the layer on the callback route only. A real
//! gRPC call and real signed callbacks go to the running example.

use crate::common;
use common::example::{address, run_printed_curl, start_named};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const SECRET: &str = "grpc-example-signature-secret-0000000001";

#[tokio::test]
async fn grpc_and_signed_callbacks_share_one_server() {
    let (_server, lines) = tokio::task::spawn_blocking(|| {
        start_named(
            "grpc_and_callbacks",
            &[
                ("VONAGE_API_KEY", "abcd1234"),
                ("VONAGE_SIGNATURE_SECRET", SECRET),
            ],
        )
    })
    .await
    .unwrap();
    let addr = address(&lines);

    // gRPC over HTTP/2, untouched by the layer (it carries no Vonage token).
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let reply = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status, ServingStatus::Serving as i32);

    // A signed callback is accepted once; unsigned and replayed ones are refused.
    let body = r#"{"sessionId":"2_MX4","event":"streamCreated"}"#;
    let auth = vonage_secure_callbacks::test_util::CallbackSigner::new("abcd1234", SECRET)
        .authorization(body.as_bytes());
    let curl = format!(
        "curl -sS -X POST http://{addr}/vonage/session -H 'Authorization: {auth}' --data-raw '{body}'"
    );
    let unsigned = format!("curl -sS -X POST http://{addr}/vonage/session --data-raw '{body}'");
    let (first, replay, missing) = tokio::task::spawn_blocking(move || {
        (
            run_printed_curl(&curl),
            run_printed_curl(&curl),
            run_printed_curl(&unsigned),
        )
    })
    .await
    .unwrap();
    assert!(first.ends_with("\n204"), "{first}");
    assert!(
        replay.ends_with("\n409") && replay.contains("replayed_token"),
        "{replay}"
    );
    assert!(
        missing.ends_with("\n503") && missing.contains("missing_token"),
        "{missing}"
    );
}
