//! The layer fits every kind of stack: axum `layer` and `route_layer`, raw hyper, and a
//! tonic-style `ServiceBuilder` composed with tower-http layers.

use crate::common;

use std::time::Duration;

use axum::routing::{get, post as axum_post};
use axum::Router;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use vonage_secure_callbacks::{
    CallbackVerifier, Secret, Secrets, SecureCallbackLayer, SecureCallbackService, VonageClaims,
};

const BODY: &[u8] = br#"{"event":"streamCreated"}"#;

#[tokio::test]
async fn axum_route_layer_guards_only_its_routes() {
    let app = Router::new()
        .route("/vonage/callback", axum_post(echo))
        .route_layer(layer())
        .route("/health", get(|| async { "up" }));
    let addr = serve_axum(app).await;
    assert_eq!(
        post(addr, Some(&bearer(BODY)), BODY).await.status,
        StatusCode::OK
    );
    assert_eq!(post(addr, None, BODY).await.error(), "missing_token");
    let health = send(
        Request::get(format!("http://{addr}/health"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(health.body, "up");
    // route_layer: an unknown path is a plain 404, not a verification.
    let unknown = send(
        Request::post(format!("http://{addr}/nope"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn per_route_secrets_with_route_layer() {
    // Video allows a secret per callback type: one router, one layer per route.
    const ARCHIVE_SECRET: &str = "archive-callbacks-secret-archive-0001";
    let archive_layer = SecureCallbackLayer::new(
        CallbackVerifier::new(
            Secrets::new().project(API_KEY, Secret::new(ARCHIVE_SECRET).unwrap()),
        )
        .clock(clock()),
    );
    let app = Router::new()
        .merge(
            Router::new()
                .route("/vonage/session", axum_post(echo))
                .route_layer(layer()),
        )
        .merge(
            Router::new()
                .route("/vonage/archive", axum_post(echo))
                .route_layer(archive_layer),
        );
    let addr = serve_axum(app).await;
    let archive_signer =
        vonage_secure_callbacks::test_util::CallbackSigner::new(API_KEY, ARCHIVE_SECRET);
    let archive_auth = format!(
        "Bearer {}",
        archive_signer.token_with(BODY, |c| {
            c.insert("iat".into(), NOW.into());
        })
    );
    let to = |path: &str, auth: &str| {
        Request::post(format!("http://{addr}{path}"))
            .header("authorization", auth)
            .body(Full::new(Bytes::from_static(BODY)))
            .unwrap()
    };
    assert_eq!(
        send(to("/vonage/archive", &archive_auth)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(to("/vonage/session", &bearer(BODY))).await.status,
        StatusCode::OK
    );
    // Each route refuses the other route's secret.
    assert_eq!(
        send(to("/vonage/session", &archive_auth)).await.error(),
        "bad_signature"
    );
    assert_eq!(
        send(to("/vonage/archive", &bearer(BODY))).await.error(),
        "bad_signature"
    );
}

#[tokio::test]
async fn raw_hyper_server() {
    let svc = ServiceBuilder::new().layer(layer()).service(jti_service());
    let addr = serve_hyper(svc).await;
    let auth = bearer(BODY);
    let reply = post(addr, Some(&auth), BODY).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body.len(),
        36,
        "the inner service saw the verified jti"
    );
    assert_eq!(
        post(addr, Some(&auth), BODY).await.error(),
        "replayed_token"
    );
}

#[tokio::test]
async fn tonic_style_service_builder_with_tower_http() {
    let svc = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(5),
        ))
        .layer(layer())
        .service(jti_service());
    let addr = serve_hyper(svc).await;

    let reply = post(addr, Some(&bearer(BODY)), BODY).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.contains_key("x-request-id"));

    let rejected = post(addr, Some("Bearer a.b.c"), BODY).await;
    assert_eq!(rejected.error(), "malformed_token");
    assert!(rejected.headers.contains_key("x-request-id"));
}

#[test]
fn layer_service_and_future_are_send_sync_clone() {
    fn clone_send_sync<T: Clone + Send + Sync + 'static>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let layer = layer();
    clone_send_sync(&layer);
    let mut svc: SecureCallbackService<_> = tower::Layer::layer(&layer, jti_service());
    clone_send_sync(&svc);
    let fut = tower::Service::call(
        &mut svc,
        Request::post("/").body(Full::new(Bytes::new())).unwrap(),
    );
    send(&fut);
}

#[tokio::test]
async fn vonage_claims_is_an_axum_extractor() {
    async fn required(claims: VonageClaims) -> String {
        claims.jti().to_owned()
    }
    async fn optional(claims: Option<VonageClaims>) -> String {
        claims.map_or_else(|| "unverified".to_owned(), |c| c.jti().to_owned())
    }
    let app = Router::new()
        .route("/vonage/callback", axum_post(required))
        .route("/vonage/optional", axum_post(optional))
        .layer(layer())
        // Routes added after the layer are not behind it.
        .route("/open/required", axum_post(required))
        .route("/open/optional", axum_post(optional));
    let addr = serve_axum(app).await;
    let token = token_at_now(b"{}", |_| {});
    let jti = claim_of(&token, "jti").unwrap();
    let reply = post(addr, Some(&format!("Bearer {token}")), "{}").await;
    assert_eq!(
        (reply.status, reply.body.as_ref()),
        (StatusCode::OK, jti.as_bytes())
    );

    let to = |path: &str| {
        http::Request::post(format!("http://{addr}{path}"))
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap()
    };
    let token = token_at_now(b"{}", |_| {});
    let verified = http::Request::post(format!("http://{addr}/vonage/optional"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(
        send(verified).await.body.as_ref(),
        claim_of(&token, "jti").unwrap().as_bytes()
    );
    let missing = send(to("/open/required")).await;
    assert_eq!(missing.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(missing.error(), "layer_missing");
    let open = send(to("/open/optional")).await;
    assert_eq!(
        (open.status, open.body.as_ref()),
        (StatusCode::OK, &b"unverified"[..])
    );
}

#[tokio::test]
async fn the_claims_say_which_secret_verified_them_during_a_rotation() {
    const OLD: &str = "the-old-signature-secret-being-rotated-out";
    const NEW: &str = "the-new-signature-secret-being-rotated-in";
    async fn which(claims: VonageClaims) -> String {
        format!("{} {:?}", claims.secret().index(), claims.secret().label())
    }
    let secrets = Secrets::new()
        .project(API_KEY, Secret::new(NEW).unwrap().labelled("2026-11"))
        .project(API_KEY, Secret::new(OLD).unwrap().labelled("2026-05"));
    let app = Router::new()
        .route("/vonage/callback", axum_post(which))
        .layer(SecureCallbackLayer::new(
            CallbackVerifier::new(secrets).clock(clock()),
        ));
    let addr = serve_axum(app).await;
    let signed_with = |secret: &str| {
        let token = vonage_secure_callbacks::test_util::CallbackSigner::new(API_KEY, secret)
            .token_with(b"{}", |c| {
                c.insert("iat".into(), NOW.into());
            });
        format!("Bearer {token}")
    };
    let old = post(addr, Some(&signed_with(OLD)), "{}").await;
    assert_eq!(old.body.as_ref(), br#"1 Some("2026-05")"#);
    let new = post(addr, Some(&signed_with(NEW)), "{}").await;
    assert_eq!(new.body.as_ref(), br#"0 Some("2026-11")"#);
}
