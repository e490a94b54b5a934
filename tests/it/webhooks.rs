//! The other Vonage webhooks signed with the same scheme: a Messages status callback, and
//! Voice's GET `answer_url`, whose `payload_hash` covers the query parameters (opt-in mode).

use crate::common;

use axum::routing::{get, post as axum_post};
use axum::{Extension, Router};
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use vonage_secure_callbacks::{query_payload, Rejection, VonageClaims};

#[tokio::test]
async fn a_messages_status_webhook_is_verified_like_a_video_callback() {
    let body = std::fs::read(format!(
        "{}/tests/fixtures/video/messages_status.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let signer = signer().application_id("aaaaaaaa-bbbb-cccc-dddd-0123456789ab");
    let token = signer.token_with(&body, |c| {
        c.insert("iat".into(), NOW.into());
    });
    let addr = serve_axum(echo_app(layer())).await;
    // The classic bug: the body re-serialised (here, keys sorted) no longer matches. Sent
    // first: once the callback is delivered, its token is refused before any body is read.
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reserialised = serde_json::to_vec(&value).unwrap();
    assert_ne!(reserialised, body);
    let reply = post(addr, Some(&format!("Bearer {token}")), reserialised).await;
    assert_eq!(reply.error(), "payload_hash_mismatch");
    let reply = post(addr, Some(&format!("Bearer {token}")), body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json()["application_id"],
        "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
    );
}

const QUERY: &str = "to=447700900000&from=447700900001&conversation_uuid=CON-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee&uuid=aaaa1111bbbb2222&region_url=https%3A%2F%2Fapi-eu-1.vonage.com";

fn answer_app(get_query: bool) -> Router {
    let layer = if get_query {
        layer_with(|v| v.verify_get_query())
    } else {
        layer()
    };
    Router::new()
        .route(
            "/answer",
            get(|Extension(c): Extension<VonageClaims>| async move { c.jti().to_owned() }),
        )
        .route("/event", axum_post(|| async { StatusCode::NO_CONTENT }))
        .layer(layer)
}

async fn get_answer(addr: std::net::SocketAddr, query: &str, auth: &str) -> Reply {
    send(
        Request::get(format!("http://{addr}/answer?{query}"))
            .header("authorization", auth)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn get_mode_verifies_the_query_as_vonage_builds_it() {
    // What Vonage hashes: the decoded parameters, in order, as compact JSON.
    let payload = query_payload(QUERY);
    assert!(payload.starts_with(r#"{"to":"447700900000","from":"447700900001","#));
    assert!(payload.ends_with(r#""region_url":"https://api-eu-1.vonage.com"}"#));
    let auth = format!("Bearer {}", token_at_now(payload.as_bytes(), |_| {}));

    let addr = serve_axum(answer_app(true)).await;
    let reply = get_answer(addr, QUERY, &auth).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body.len(), 36);

    // The same parameters in another order, or one value changed: refused.
    let fresh = || format!("Bearer {}", token_at_now(payload.as_bytes(), |_| {}));
    let mut params: Vec<&str> = QUERY.split('&').collect();
    params.swap(0, 1);
    let reordered = params.join("&");
    assert_eq!(
        get_answer(addr, &reordered, &fresh()).await.error(),
        "payload_hash_mismatch"
    );
    let altered = QUERY.replace("447700900000", "447700900009");
    assert_eq!(
        get_answer(addr, &altered, &fresh()).await.error(),
        "payload_hash_mismatch"
    );
    let extra = format!("{QUERY}&admin=1");
    assert_eq!(
        get_answer(addr, &extra, &fresh()).await.error(),
        "payload_hash_mismatch"
    );
}

#[tokio::test]
async fn get_mode_never_applies_to_a_post_and_is_off_by_default() {
    let payload = query_payload(QUERY);
    let signed_over_query = format!("Bearer {}", token_at_now(payload.as_bytes(), |_| {}));

    // With the mode on, a POST still hashes its body: a token over the query does not pass.
    let addr = serve_axum(answer_app(true)).await;
    let reply = send(
        Request::post(format!("http://{addr}/event?{QUERY}"))
            .header("authorization", &signed_over_query)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.error(), Rejection::PayloadHashMismatch.code());
    let body = br#"{"status":"answered"}"#;
    let reply = send(
        Request::post(format!("http://{addr}/event?{QUERY}"))
            .header("authorization", bearer(body))
            .body(Full::new(Bytes::from_static(body)))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    // Off (the default): a GET is held to its empty body, so the query-signed token fails.
    let addr = serve_axum(answer_app(false)).await;
    let reply = get_answer(addr, QUERY, &signed_over_query).await;
    assert_eq!(reply.error(), Rejection::PayloadHashMismatch.code());
}

#[test]
fn the_verifier_checks_a_query_directly() {
    let vonage_secure_callbacks::Scheme::Jwt(verifier) = layer().scheme().clone() else {
        unreachable!("a JWT layer")
    };
    let payload = query_payload(QUERY);
    let mut headers = http::HeaderMap::new();
    let auth = format!("Bearer {}", token_at_now(payload.as_bytes(), |_| {}));
    headers.insert("authorization", auth.parse().unwrap());
    assert!(verifier.verify_query(&headers, QUERY).is_ok());
    assert_eq!(
        verifier.verify_query(&headers, "to=1").unwrap_err(),
        Rejection::PayloadHashMismatch
    );
}
