//! Secret hygiene: over every rejection path, the tracing output names the reason and never
//! the secret, the token or the body; `Debug` of every configured type hides the secret.

#[path = "it/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use serde_json::json;
use tower::{Service, ServiceExt};
use tracing_subscriber::fmt::MakeWriter;
use vonage_secure_callbacks::{
    CallbackVerifier, MemoryReplayStore, Rejection, Secret, Secrets, SecureCallbackLayer,
};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures every event of this thread, at every level, until the guard is dropped.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

const BODY: &[u8] = br#"{"private":"body-marker-7f3a","event":"sessionCreated"}"#;

async fn call<S>(svc: &mut S, req: Request<Full<Bytes>>) -> S::Response
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

#[tokio::test]
async fn tracing_names_reasons_and_never_secrets_tokens_or_bodies() {
    let (captured, _guard) = capture();

    let mut svc = tower::ServiceBuilder::new()
        .layer(layer_with(|v| v.body_limit(BODY.len())))
        .service(jti_service());
    // A replay store with no room: every verified callback meets replay_store_unavailable.
    let mut full_svc = tower::ServiceBuilder::new()
        .layer(layer().replay_store(MemoryReplayStore::with_capacity(0)))
        .service(jti_service());

    let valid = token_at_now(BODY, |_| {});
    let tokens = vec![
        valid.clone(),
        valid.clone(),
        token_at_now(BODY, |c| {
            c.insert("iss".into(), json!("x"));
        }),
        token_at_now(BODY, |c| {
            c.insert("iat".into(), json!(1));
        }),
        token_at_now(BODY, |c| {
            c.insert("iat".into(), json!(NOW + 9999));
        }),
        token_at_now(BODY, |c| {
            c.remove("payload_hash");
        }),
        token_at_now(b"other", |_| {}),
        token_at_now(BODY, |c| {
            c.insert("api_key".into(), json!("nobody"));
        }),
        format!("{}x", &valid[..valid.len() - 1]),
        valid.replace(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            "eyJhbGciOiJub25lIn0",
        ),
        "garbage".to_owned(),
    ];
    let request = |auth: Option<&str>, body: Bytes| {
        let mut req = Request::post("/").body(Full::new(body)).unwrap();
        if let Some(token) = auth {
            let value = format!("Bearer {token}").parse().unwrap();
            req.headers_mut().insert("authorization", value);
        }
        req
    };
    let mut cases: Vec<_> = tokens
        .iter()
        .map(|t| request(Some(t), Bytes::from_static(BODY)))
        .collect();
    cases.push(request(None, Bytes::from_static(BODY)));
    let oversized = vec![b'x'; BODY.len() + 1];
    cases.push(request(
        Some(&token_at_now(&oversized, |_| {})),
        oversized.into(),
    ));

    let mut responses = Vec::new();
    for req in cases {
        let res = call(&mut svc, req).await;
        responses.push(res.extensions().get::<Rejection>().copied());
    }
    let fresh = token_at_now(BODY, |_| {});
    let req = request(Some(&fresh), Bytes::from_static(BODY));
    let res = call(&mut full_svc, req).await;
    responses.push(res.extensions().get::<Rejection>().copied());
    let sent_tokens = [tokens, vec![fresh]].concat();

    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(responses[0], None, "the valid callback passes");
    let reasons: Vec<_> = responses.iter().flatten().collect();
    assert_eq!(reasons.len(), responses.len() - 1, "{responses:?}");
    for r in &reasons {
        assert!(
            out.contains(r.code()),
            "{} missing from the log:\n{out}",
            r.code()
        );
    }
    assert!(!out.contains(SECRET), "secret leaked:\n{out}");
    // Refusals carry the facts that point to their cause.
    assert!(out.contains(r#"configured_api_keys=["a1b2c3d4"]"#), "{out}");
    // And only the facts they carry: no empty list on a refusal that gathered none.
    assert!(!out.contains("configured_api_keys=[]"), "{out}");
    // The accepted callback's event names the secret that verified it by position (no label).
    assert!(
        out.lines()
            .any(|l| l.contains("callback accepted") && l.contains("secret=#0")),
        "no accepted-callback event:\n{out}"
    );
    for token in &sent_tokens {
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!out.contains(part), "token leaked:\n{out}");
        }
    }
    assert!(!out.contains("body-marker-7f3a"), "body leaked:\n{out}");
}

#[test]
fn debug_output_never_shows_the_secret() {
    let secret = Secret::new(SECRET).unwrap();
    let secrets = Secrets::new().project(API_KEY, secret.clone());
    let layer = SecureCallbackLayer::new(secrets.clone());
    let verifier = CallbackVerifier::new(secrets.clone());
    let svc: vonage_secure_callbacks::SecureCallbackService<_> = tower::Layer::layer(
        &layer,
        tower::service_fn(|_: ()| async { Ok::<(), ()>(()) }),
    );
    let signer = signer();
    for shown in [
        format!("{secret:?}"),
        format!("{secrets:?}"),
        format!("{layer:?}"),
        format!("{verifier:?}"),
        format!("{svc:?}"),
        format!("{signer:?}"),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(&SECRET[..12]), "{shown}");
    }
    assert!(format!("{secrets:?}").contains(API_KEY));
}

#[test]
fn a_shrinking_replay_window_is_warned_about_once_per_five_minutes() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use vonage_secure_callbacks::replay::{
        Attempt, Outcome, ReplayKey, ReplayStore, Reservation, Retention,
    };
    fn now<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => unreachable!(),
        }
    }
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryReplayStore::with_capacity(16);
    let mut n = 0;
    let mut deliver = |t: u64| {
        n += 1;
        let key = ReplayKey::new(API_KEY, &format!("jti-{n}"));
        let attempt = Attempt::new(key, t, t, Retention::new(t + 86_400, t));
        let Ok(Reservation::Reserved(lease)) = now(store.reserve(attempt)) else {
            panic!("a fresh callback was refused")
        };
        now(store.settle(&lease, Outcome::Delivered)).unwrap();
    };
    // Fills at t = 0..16 s, then evicts at 100 s, 200 s (within 5 min: no second warning),
    // and 500 s (a second warning).
    for t in 0..16 {
        deliver(NOW + t);
    }
    for t in [100, 200, 500] {
        for _ in 0..16 {
            deliver(NOW + t);
        }
    }
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 2, "{out}");
    for w in &warnings {
        assert!(
            w.contains("window_secs=") && w.contains("capacity=16"),
            "{w}"
        );
        assert!(
            w.contains("replay_window_exceeded") && w.contains("RedisReplayStore"),
            "{w}"
        );
    }
}

/// The SMS scheme's events name reasons and facts, never the secret, a `sig` or a message's
/// text or numbers; `Debug` of its verifier and parameters hides them too.
#[tokio::test]
async fn sms_tracing_and_debug_never_show_secrets_sigs_or_messages() {
    use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier};
    use vonage_secure_callbacks::{FixedClock, Secret, Secrets};

    let (captured, _guard) = capture();

    let method = SignatureMethod::HmacSha256;
    let secrets = Secrets::new().project("a1b2c3d4", Secret::new(SECRET).unwrap());
    let verifier = SmsVerifier::new(secrets, method).clock(FixedClock::new(NOW));
    assert!(!format!("{verifier:?}").contains(SECRET));
    let layer = vonage_secure_callbacks::SecureCallbackLayer::sms(verifier)
        .replay_store(MemoryReplayStore::new());
    let mut svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(
            |_: Request<vonage_secure_callbacks::VerifiedBody>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
            },
        ));
    let mut params = SmsParams::from_pairs([
        ("msisdn", "447700900321"),
        ("text", "private-message-marker-91c2"),
        ("nonce", "n-hygiene"),
    ]);
    params.set("timestamp", NOW.to_string());
    let sig = method.sign(&params, SECRET.as_bytes());
    params.set("sig", sig.clone());
    assert!(!format!("{params:?}").contains("private-message-marker"));
    let mut tampered = params.clone();
    tampered.set("text", "private-message-marker-91c3");
    for p in [&params, &params, &tampered] {
        let req = Request::get(format!("/?{}", p.to_form()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        call(&mut svc, req).await;
    }
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        out.contains("sms accepted")
            && out.contains("replayed_token")
            && out.contains("bad_signature"),
        "{out}"
    );
    for secret in [SECRET, &sig, "private-message-marker", "447700900321"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
}
