//! Feature `metrics`: after real requests through an axum server on loopback, the recorder holds
//! exactly the counters, histograms and gauges the docs name. Its own test binary, because the
//! recorder is process-wide.

#[path = "it/common/mod.rs"]
mod common;

use std::collections::HashMap;

use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use vonage_secure_callbacks::metrics as names;
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{CallbackVerifier, MemoryReplayStore, Secrets, SecureCallbackLayer};

const CURRENT: &str = "metrics-test-current-secret-0000000001";
const PREVIOUS: &str = "metrics-test-previous-secret-000000002";

/// One metric's value, by kind, name and labels (sorted `key=value`).
type Figures = HashMap<(MetricKind, String, Vec<String>), DebugValue>;

fn figures(snapshot: metrics_util::debugging::Snapshot) -> Figures {
    snapshot
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            ((kind, key.name().to_owned(), labels), value)
        })
        .collect()
}

fn counter(f: &Figures, name: &str, labels: &[&str]) -> u64 {
    let labels = labels.iter().map(|l| l.to_string()).collect();
    match f.get(&(MetricKind::Counter, name.to_owned(), labels)) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {other:?}"),
    }
}

fn histogram(f: &Figures, name: &str, labels: &[&str]) -> Vec<f64> {
    let labels = labels.iter().map(|l| l.to_string()).collect();
    match f.get(&(MetricKind::Histogram, name.to_owned(), labels)) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
        other => panic!("{name} {other:?}"),
    }
}

fn gauge(f: &Figures, name: &str) -> f64 {
    match f.get(&(MetricKind::Gauge, name.to_owned(), Vec::new())) {
        Some(DebugValue::Gauge(v)) => v.into_inner(),
        other => panic!("{name} {other:?}"),
    }
}

#[tokio::test]
async fn real_requests_show_up_as_the_documented_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");
    names::describe();

    let lookup = |name: &str| match name {
        "VONAGE_API_KEY" => Some(API_KEY.to_owned()),
        "VONAGE_SIGNATURE_SECRET" => Some(CURRENT.to_owned()),
        "VONAGE_SIGNATURE_SECRET_PREVIOUS" => Some(PREVIOUS.to_owned()),
        _ => None,
    };
    let verifier = CallbackVerifier::new(Secrets::from_lookup(lookup).unwrap()).clock(clock());
    let store = MemoryReplayStore::new();
    let layer = SecureCallbackLayer::new(verifier).replay_store(store.clone());
    let addr = serve_axum(echo_app(layer)).await;

    let current = CallbackSigner::new(API_KEY, CURRENT);
    let previous = CallbackSigner::new(API_KEY, PREVIOUS);
    let at_now = |signer: &CallbackSigner, body: &[u8]| {
        let token = signer.token_with(body, |c| {
            c.insert("iat".into(), NOW.into());
        });
        format!("Bearer {token}")
    };
    let bodies: [&[u8]; 4] = [b"{}", b"{\"a\":1}", b"{\"event\":\"x\"}", b"[]"];
    for body in &bodies[..3] {
        assert_eq!(
            post(addr, Some(&at_now(&current, body)), *body)
                .await
                .status,
            200
        );
    }
    let replayed = at_now(&previous, bodies[3]);
    assert_eq!(post(addr, Some(&replayed), bodies[3]).await.status, 200);
    assert_eq!(
        post(addr, Some(&replayed), bodies[3]).await.error(),
        "replayed_token"
    );
    let tampered = post(addr, Some(&at_now(&current, b"{}")), &b"{ }"[..]).await;
    assert_eq!(tampered.error(), "payload_hash_mismatch");
    let forged = CallbackSigner::new(API_KEY, "not-the-secret-of-this-project-000000");
    assert_eq!(
        post(addr, Some(&at_now(&forged, b"{}")), "{}")
            .await
            .error(),
        "bad_signature"
    );
    // Each unknown key a forger invents lands in one series, not one series per key.
    for key in ["invented-1", "invented-2"] {
        let stranger = CallbackSigner::new(key, CURRENT);
        let reply = post(addr, Some(&at_now(&stranger, b"{}")), "{}").await;
        assert_eq!(reply.error(), "unknown_api_key");
    }
    assert_eq!(post(addr, None, "{}").await.error(), "missing_token");

    let f = figures(snapshotter.snapshot());
    let key = format!("api_key={API_KEY}");
    let accepted = |secret: &str| counter(&f, names::ACCEPTED, &[&key, secret]);
    assert_eq!(
        (accepted("secret=current"), accepted("secret=previous")),
        (3, 1)
    );
    let refused =
        |reason: &str, key: &str| counter(&f, names::REFUSED, &[key, &format!("reason={reason}")]);
    assert_eq!(refused("replayed_token", &key), 1);
    assert_eq!(refused("payload_hash_mismatch", &key), 1);
    assert_eq!(refused("bad_signature", &key), 1);
    assert_eq!(refused("unknown_api_key", "api_key=unknown"), 2);
    assert_eq!(refused("missing_token", "api_key=unknown"), 1);
    let series = f
        .keys()
        .filter(|(_, name, _)| name == names::REFUSED)
        .count();
    assert_eq!(series, 5, "one series per reason and configured key");

    // Bodies read: the four accepted and the tampered one; the replay was refused before its
    // body was read, the others on their headers.
    let mut lengths = histogram(&f, names::BODY_BYTES, &[&key]);
    lengths.sort_by(f64::total_cmp);
    assert_eq!(lengths, [2.0, 2.0, 3.0, 7.0, 13.0]);
    // Verification time of every request: 7 with a configured key, 3 without.
    let times = histogram(&f, names::VERIFICATION_SECONDS, &[&key]);
    assert_eq!(times.len(), 7);
    assert!(times.iter().all(|t| *t > 0.0 && *t < 1.0), "{times:?}");
    let unknown = histogram(&f, names::VERIFICATION_SECONDS, &["api_key=unknown"]);
    assert_eq!(unknown.len(), 3);

    assert_eq!(gauge(&f, names::STORE_ENTRIES), store.len() as f64);
    assert_eq!(store.len(), 4);
    // The whole retention: max age, skew, and the last second a token is accepted in.
    let full = vonage_secure_callbacks::DEFAULT_MAX_AGE
        + vonage_secure_callbacks::DEFAULT_CLOCK_SKEW
        + std::time::Duration::from_secs(1);
    assert_eq!(gauge(&f, names::STORE_WINDOW_SECONDS), full.as_secs_f64());
}
