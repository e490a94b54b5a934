//! Typed Video callback events: every fixture (built from the examples in Vonage's
//! documentation) parses to its family and round-trips; unknown types and fields are kept; and
//! the axum extractor serves them behind the layer.
#![cfg(feature = "axum")]

use crate::common;

use axum::routing::post as axum_post;
use axum::{Json, Router};
use common::*;
use http::StatusCode;
use serde_json::{json, Value};
use vonage_secure_callbacks::events::{SessionEventKind, VideoEvent};
use vonage_secure_callbacks::extract::VideoCallback;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/video/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

/// The JSON without its `null` fields (a typed field that is `null` is written back absent).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

const EXPECTED: &[(&str, &str, &str)] = &[
    ("session_created", "session", "sessionCreated"),
    ("session_destroyed", "session", "sessionDestroyed"),
    ("connection_created", "session", "connectionCreated"),
    ("connection_destroyed", "session", "connectionDestroyed"),
    ("stream_created", "session", "streamCreated"),
    ("stream_destroyed", "session", "streamDestroyed"),
    (
        "connection_created_with_new_fields",
        "session",
        "connectionCreated",
    ),
    ("sip_call_created", "sip", "callCreated"),
    ("sip_call_destroyed", "sip", "callDestroyed"),
    ("archive_started", "archive", "started"),
    ("archive_available", "archive", "available"),
    ("archive_failed", "archive", "failed"),
    ("broadcast_started", "broadcast", "started"),
    ("broadcast_stopped", "broadcast", "stopped"),
    ("render_started", "render", "started"),
    ("render_stopped", "render", "stopped"),
    ("captions_started", "captions", "started"),
    ("captions_stopped", "captions", "stopped"),
    ("unknown_event", "other", "somethingVonageAddsLater"),
];

#[test]
fn every_fixture_parses_to_its_family_and_round_trips() {
    let dir = format!("{}/tests/fixtures/video", env!("CARGO_MANIFEST_DIR"));
    let on_disk = std::fs::read_dir(dir).unwrap().count();
    assert_eq!(
        on_disk,
        EXPECTED.len() + 1,
        "every fixture is listed (plus messages_status)"
    );
    for (name, family, kind) in EXPECTED {
        let body = fixture(name);
        let event = VideoEvent::parse(&body).unwrap();
        assert_eq!((event.family(), event.kind()), (*family, *kind), "{name}");
        // Round trip: written back, it is the same JSON (less nulls), and parses the same.
        let written = serde_json::to_value(&event).unwrap();
        let original: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(written, without_nulls(original), "{name}");
        let again = VideoEvent::parse(written.to_string().as_bytes()).unwrap();
        assert_eq!(again, event, "{name}");
    }
}

#[test]
fn typed_fields_are_filled() {
    let VideoEvent::Session(e) = VideoEvent::parse(&fixture("stream_created")).unwrap() else {
        panic!()
    };
    assert_eq!(e.kind(), Some(SessionEventKind::StreamCreated));
    let stream = e.stream.unwrap();
    assert_eq!(stream.video_type.as_deref(), Some("camera"));
    assert_eq!(
        stream.connection.unwrap().data.as_deref(),
        Some("TOKENDATA")
    );

    let VideoEvent::Archive(a) = VideoEvent::parse(&fixture("archive_available")).unwrap() else {
        panic!()
    };
    assert_eq!((a.duration, a.size), (Some(328), Some(18023312)));
    assert_eq!(a.partner_id.unwrap().to_string(), "123456");
    assert_eq!(a.extra["streamMode"], "auto");

    let VideoEvent::SipCall(c) = VideoEvent::parse(&fixture("sip_call_created")).unwrap() else {
        panic!()
    };
    assert_eq!(c.kind(), Some(SessionEventKind::CallCreated));
    assert!(c.call.unwrap().sip_uri.unwrap().starts_with("sip:"));

    let VideoEvent::Render(r) = VideoEvent::parse(&fixture("render_stopped")).unwrap() else {
        panic!()
    };
    assert_eq!(r.reason.as_deref(), Some("Stop Requested"));
}

#[test]
fn unknown_fields_are_kept() {
    let VideoEvent::Session(e) =
        VideoEvent::parse(&fixture("connection_created_with_new_fields")).unwrap()
    else {
        panic!()
    };
    assert_eq!(e.extra["region"], "eu-west-1");
    assert_eq!(e.connection.unwrap().extra["platform"], "web");
    let VideoEvent::Other(v) = VideoEvent::parse(&fixture("unknown_event")).unwrap() else {
        panic!()
    };
    assert_eq!(v["payload"]["anything"], json!([1, 2, 3]));
}

async fn family_and_kind(VideoCallback { claims, event }: VideoCallback) -> Json<Value> {
    Json(json!({"api_key": claims.api_key(), "family": event.family(), "kind": event.kind()}))
}

#[tokio::test]
async fn the_extractor_serves_typed_events_behind_the_layer() {
    let app = Router::new()
        .route("/video", axum_post(family_and_kind))
        .layer(layer());
    let addr = serve_axum(app).await;
    let send = |body: Vec<u8>| {
        let auth = bearer(&body);
        async move {
            send(
                http::Request::post(format!("http://{addr}/video"))
                    .header("authorization", auth)
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap(),
            )
            .await
        }
    };
    for (name, family, kind) in EXPECTED {
        let reply = send(fixture(name)).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(
            reply.json(),
            json!({"api_key": API_KEY, "family": family, "kind": kind})
        );
    }
    // Verified, but not JSON: a clear 400.
    let reply = send(b"event=connectionCreated".to_vec()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "body_not_json");
}

#[tokio::test]
async fn without_the_layer_the_extractor_refuses() {
    let app = Router::new().route("/video", axum_post(family_and_kind));
    let addr = serve_axum(app).await;
    let reply = send(
        http::Request::post(format!("http://{addr}/video"))
            .body(http_body_util::Full::new(bytes::Bytes::from(fixture(
                "session_created",
            ))))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.error(), "layer_missing");
}
