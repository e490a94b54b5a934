//! Typed Video callback events: every fixture (written from the field lists of Vonage's
//! guides; `tests/fixtures/video/SOURCES.md` says which, and which are REST resources rather
//! than callbacks) parses to its family and round-trips; each document's own fields are typed;
//! unknown types and fields are kept; odd scalar types never cost an event its family; and the
//! axum extractor serves them behind the layer.
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
    ("session_notification", "session", "sessionNotification"),
    ("sip_call_created", "sip", "callCreated"),
    ("sip_call_updated", "sip", "callUpdated"),
    ("sip_call_destroyed", "sip", "callDestroyed"),
    ("sip_mute_forced", "sip", "muteForced"),
    ("archive_encrypted_uploaded", "archive", "uploaded"),
    ("archive_without_event", "archive", "stopped"),
    ("render_status_started", "render", "started"),
    ("render_status_failed", "render", "failed"),
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
        EXPECTED.len() + 2,
        "every fixture is listed (plus messages_status and SOURCES.md)"
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
    assert_eq!(a.stream_mode.as_deref(), Some("auto"));

    let VideoEvent::SipCall(c) = VideoEvent::parse(&fixture("sip_call_created")).unwrap() else {
        panic!()
    };
    assert_eq!(c.kind(), Some(SessionEventKind::CallCreated));
    let call = c.call.unwrap();
    assert_eq!(call.created_at, Some(1_470_258_900_000));
    assert!(call.connection_id.is_some());

    let VideoEvent::Render(r) = VideoEvent::parse(&fixture("render_stopped")).unwrap() else {
        panic!()
    };
    assert_eq!(r.reason.as_deref(), Some("Stop Requested"));
}

#[test]
fn what_each_document_adds_is_typed() {
    use vonage_secure_callbacks::events::CallState;
    let parse = |name| VideoEvent::parse(&fixture(name)).unwrap();

    let VideoEvent::SipCall(updated) = parse("sip_call_updated") else {
        panic!()
    };
    assert_eq!(updated.state, Some(CallState::Ringing));
    let VideoEvent::SipCall(destroyed) = parse("sip_call_destroyed") else {
        panic!()
    };
    assert_eq!(destroyed.reason_code.as_deref(), Some("700"));
    assert_eq!(destroyed.reason_code_number(), Some(700));
    assert_eq!(
        destroyed.reason_message.as_deref(),
        Some("Normal call clearing")
    );
    assert!(destroyed.extra.is_empty(), "nothing left untyped");
    let VideoEvent::SipCall(muted) = parse("sip_mute_forced") else {
        panic!()
    };
    assert_eq!(muted.kind(), Some(SessionEventKind::MuteForced));

    let VideoEvent::Session(notice) = parse("session_notification") else {
        panic!()
    };
    assert_eq!(notice.kind(), Some(SessionEventKind::SessionNotification));
    assert_eq!(notice.reason.as_deref(), Some("serverRotation"));

    let VideoEvent::Archive(a) = parse("archive_encrypted_uploaded") else {
        panic!()
    };
    assert_eq!(a.stream_mode.as_deref(), Some("manual"));
    let streams = a.streams.clone().unwrap();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].stream_id.as_deref(), Some("e32445b7-0001"));
    assert_eq!(
        (streams[0].has_audio, streams[0].has_video),
        (Some(true), Some(false))
    );
    let password = a.password.clone().unwrap();
    assert_eq!(password.expose(), "made-up-wrapped-key-material");
    assert!(
        !format!("{a:?}").contains("made-up-wrapped"),
        "Debug hides it"
    );
    assert!(a.extra.is_empty(), "nothing left untyped");
    let VideoEvent::Archive(plain) = parse("archive_without_event") else {
        panic!("an archive without `event` is still an archive")
    };
    assert_eq!(plain.event, None);

    let VideoEvent::Render(started) = parse("render_status_started") else {
        panic!("a render status callback without `event`")
    };
    assert_eq!(
        started.stream_id.as_deref(),
        Some("e32445b743678c98230f238")
    );
    let VideoEvent::Render(failed) = parse("render_status_failed") else {
        panic!()
    };
    assert_eq!(
        (failed.stream_id, failed.reason.as_deref()),
        (None, Some("Could not load URL"))
    );

    // Unknown values stay readable.
    let body = br#"{"event":"callUpdated","state":"TRANSFERRING","sessionId":"s"}"#;
    let VideoEvent::SipCall(e) = VideoEvent::parse(body).unwrap() else {
        panic!()
    };
    assert_eq!(e.state, Some(CallState::Unknown("TRANSFERRING".into())));
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

/// Any JSON value, a few levels deep.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e20f64..1e20).prop_map(|f| json!(f)),
        "[a-zA-Z0-9 _:.-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// An object with a known `event` keeps its family whatever else it holds: unknown fields,
    /// and any type at all in the fields this crate names.
    #[test]
    fn a_known_event_never_loses_its_family(
        event in proptest::sample::select(&[
            ("sessionCreated", "session"), ("connectionDestroyed", "session"),
            ("streamCreated", "session"), ("sessionNotification", "session"),
            ("callCreated", "sip"), ("callUpdated", "sip"), ("callDestroyed", "sip"),
            ("muteForced", "sip"), ("archive", "archive"), ("broadcast", "broadcast"),
            ("captions", "captions"), ("render", "render"),
        ][..]),
        fields in proptest::collection::vec(
            (
                proptest::sample::select(&[
                    "sessionId", "projectId", "applicationId", "timestamp", "reason",
                    "connection", "stream", "call", "state", "reason_code", "reason_message",
                    "id", "status", "partnerId", "createdAt", "updatedAt", "duration", "size",
                    "url", "streams", "password", "streamMode", "hasAudio", "broadcastUrls",
                    "captionId", "streamId", "somethingNew",
                ][..]),
                any_json(),
            ),
            0..10,
        ),
    ) {
        let (name, family) = event;
        let mut object = serde_json::Map::new();
        for (field, value) in fields {
            object.insert(field.to_owned(), value);
        }
        object.insert("event".into(), json!(name));
        let body = Value::Object(object).to_string();
        let parsed = VideoEvent::parse(body.as_bytes()).unwrap();
        proptest::prop_assert_eq!(parsed.family(), family, "{}", body);
        // And what it writes back parses to the same family.
        let written = serde_json::to_vec(&parsed).unwrap();
        proptest::prop_assert_eq!(VideoEvent::parse(&written).unwrap().family(), family);
    }
}
