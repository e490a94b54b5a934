//! The SMS `sig` scheme through a real axum server on loopback: every shared vector by GET, form
//! and JSON, every method, and each way a request is refused, with the code it is refused with.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use std::net::SocketAddr;

use axum::routing::any;
use axum::{Extension, Json, Router};
use vonage_secure_callbacks::dangerous::short_secret;
use vonage_secure_callbacks::replay::{ReplayStore, SqliteReplayStore};
use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier, VerifiedSms};
use vonage_secure_callbacks::{
    FixedClock, MemoryReplayStore, Rejection, Secrets, SecureCallbackLayer,
};

use crate::common::{send, serve_axum, Reply};

const SECRET: &str = "sms-test-signature-secret-sms-test-0001";
const API_KEY: &str = "a1b2c3d4";
const NOW: u64 = 1_800_000_000;

async fn echo(Extension(sms): Extension<VerifiedSms>, body: Bytes) -> Json<Value> {
    Json(json!({
        "api_key": sms.api_key(),
        "nonce": sms.replay_id(),
        "text": sms.params().get("text"),
        "kind": sms.event().kind(),
        "body_len": body.len(),
    }))
}

/// A server verifying `method` with `secret` for `api_key` at time `now`, with a store of its own.
async fn server(method: SignatureMethod, api_key: &str, secret: &str, now: u64) -> SocketAddr {
    server_with(method, api_key, secret, now, MemoryReplayStore::new()).await
}

/// As [`server`], with the replay store `store`.
async fn server_with<R: ReplayStore>(
    method: SignatureMethod,
    api_key: &str,
    secret: &str,
    now: u64,
    store: R,
) -> SocketAddr {
    let secrets = Secrets::new().project(api_key, short_secret(secret).unwrap());
    let verifier = SmsVerifier::new(secrets, method)
        .clock(FixedClock::new(now))
        .body_limit(4096);
    let layer = SecureCallbackLayer::sms(verifier).replay_store(store);
    serve_axum(Router::new().route("/vonage/sms", any(echo)).layer(layer)).await
}

/// How the account sends its parameters (Dashboard: "GET", "POST", "POST-JSON").
#[derive(Clone, Copy, Debug)]
pub enum Encoding {
    Query,
    Form,
    Json,
}

pub const ENCODINGS: [Encoding; 3] = [Encoding::Query, Encoding::Form, Encoding::Json];

pub async fn deliver(addr: SocketAddr, params: &SmsParams, encoding: Encoding) -> Reply {
    let url = format!("http://{addr}/vonage/sms");
    let request = match encoding {
        Encoding::Query => {
            Request::get(format!("{url}?{}", params.to_form())).body(Full::default())
        }
        Encoding::Form => Request::post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(params.to_form()))),
        Encoding::Json => {
            let object: serde_json::Map<String, Value> = params
                .iter()
                .map(|(n, v)| (n.to_owned(), json!(v)))
                .collect();
            Request::post(url)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(Value::Object(object).to_string())))
        }
    };
    send(request.unwrap()).await
}

/// An inbound message, signed now by `method`.
pub fn inbound(method: SignatureMethod, nonce: &str) -> SmsParams {
    let mut params = SmsParams::from_pairs([
        ("msisdn", "447700900001"),
        ("to", "447700900000"),
        ("messageId", "0A0000000123ABCD1"),
        ("text", "Hello & welcome = yes, 100% +1"),
        ("type", "text"),
        ("keyword", "HELLO"),
        ("message-timestamp", "2027-01-15 12:00:00"),
        ("api-key", API_KEY),
        ("nonce", nonce),
    ]);
    params.set("timestamp", NOW.to_string());
    let sig = method.sign(&params, SECRET.as_bytes());
    params.set("sig", sig);
    params
}

#[tokio::test]
async fn every_shared_vector_is_accepted_by_get_form_and_json_then_refused_as_a_replay() {
    for (name, method, params, secret, _) in crate::sms_vectors::vectors() {
        let now: u64 = params.get("timestamp").unwrap().parse().unwrap();
        for encoding in ENCODINGS {
            // A server of its own each time: the same vector again is a replay.
            let addr = server(method, "vectors", &secret, now).await;
            let reply = deliver(addr, &params, encoding).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{name} {encoding:?}: {reply:?}"
            );
            let again = deliver(addr, &params, encoding).await;
            assert_eq!(again.error(), "replayed_token", "{name} {encoding:?}");
        }
    }
}

#[tokio::test]
async fn every_method_on_every_encoding_with_either_case_of_hex() {
    for method in SignatureMethod::ALL {
        let addr = server(method, API_KEY, SECRET, NOW).await;
        for (i, encoding) in ENCODINGS.into_iter().enumerate() {
            let mut params = inbound(method, &format!("nonce-{method}-{i}"));
            if i == 1 {
                let upper = params.get("sig").unwrap().to_uppercase();
                params.set("sig", upper);
            }
            let reply = deliver(addr, &params, encoding).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{method} {encoding:?}: {reply:?}"
            );
            assert_eq!(reply.json()["text"], "Hello & welcome = yes, 100% +1");
            assert_eq!(reply.json()["kind"], "inbound");
            assert_eq!(reply.json()["nonce"], format!("nonce-{method}-{i}"));
        }
    }
}

/// Each way a request is refused, through the server, with its code; `expect` checks the
/// response's shape and counts the code as reached.
pub async fn sms_rejections(expect: fn(&Reply, Rejection)) {
    let method = SignatureMethod::HmacSha256;
    let addr = server(method, API_KEY, SECRET, NOW).await;
    let url = format!("http://{addr}/vonage/sms");

    let mut tampered = inbound(method, "n-tampered");
    tampered.set("text", "Hello & welcome = no");
    expect(
        &deliver(addr, &tampered, Encoding::Form).await,
        Rejection::BadSignature,
    );

    let mut added = inbound(method, "n-added");
    added.set("extra", "1");
    expect(
        &deliver(addr, &added, Encoding::Query).await,
        Rejection::BadSignature,
    );

    let removed = SmsParams::from_pairs(
        inbound(method, "n-removed")
            .iter()
            .filter(|(n, _)| *n != "keyword"),
    );
    expect(
        &deliver(addr, &removed, Encoding::Json).await,
        Rejection::BadSignature,
    );

    // Signed by another method than the account's: refused, whatever its length.
    let other = inbound(SignatureMethod::HmacSha512, "n-method");
    expect(
        &deliver(addr, &other, Encoding::Form).await,
        Rejection::BadSignature,
    );
    let md5hash = inbound(SignatureMethod::Md5Hash, "n-md5hash");
    expect(
        &deliver(addr, &md5hash, Encoding::Form).await,
        Rejection::BadSignature,
    );

    let unsigned = SmsParams::from_pairs(
        inbound(method, "n-unsigned")
            .iter()
            .filter(|(n, _)| *n != "sig"),
    );
    expect(
        &deliver(addr, &unsigned, Encoding::Form).await,
        Rejection::MissingSignature,
    );

    let mut untimed = SmsParams::from_pairs(
        inbound(method, "n-untimed")
            .iter()
            .filter(|(n, _)| *n != "timestamp" && *n != "sig"),
    );
    let sig = method.sign(&untimed, SECRET.as_bytes());
    untimed.set("sig", sig);
    expect(
        &deliver(addr, &untimed, Encoding::Form).await,
        Rejection::MissingTimestamp,
    );

    let timed = |nonce: &str, at: u64| {
        let mut p = inbound(method, nonce);
        p.set("timestamp", at.to_string());
        let sig = method.sign(
            &SmsParams::from_pairs(p.iter().filter(|(n, _)| *n != "sig")),
            SECRET.as_bytes(),
        );
        p.set("sig", sig);
        p
    };
    let max_age = vonage_secure_callbacks::sms::DEFAULT_SMS_MAX_AGE.as_secs();
    expect(
        &deliver(addr, &timed("n-stale", NOW - max_age - 1), Encoding::Form).await,
        Rejection::StaleToken,
    );
    expect(
        &deliver(addr, &timed("n-future", NOW + 301), Encoding::Form).await,
        Rejection::TokenFromFuture,
    );
    // A retry three days later still gets through.
    let late = deliver(addr, &timed("n-late", NOW - max_age), Encoding::Form).await;
    assert_eq!(late.status, StatusCode::OK, "{late:?}");

    let unknown = {
        let mut p = inbound(method, "n-unknown");
        p.set("api-key", "another-account");
        let sig = method.sign(
            &SmsParams::from_pairs(p.iter().filter(|(n, _)| *n != "sig")),
            SECRET.as_bytes(),
        );
        p.set("sig", sig);
        p
    };
    expect(
        &deliver(addr, &unknown, Encoding::Form).await,
        Rejection::UnknownApiKey,
    );

    // Parameters in the query and the body at once; a name twice; not UTF-8; not scalars.
    let form = inbound(method, "n-mixed").to_form();
    let mixed = Request::post(format!("{url}?to=447700900000"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form.clone())))
        .unwrap();
    expect(&send(mixed).await, Rejection::MalformedParameters);
    let get_with_body = Request::builder()
        .method(Method::GET)
        .uri(format!("{url}?{form}"))
        .body(Full::new(Bytes::from_static(b"x=1")))
        .unwrap();
    expect(&send(get_with_body).await, Rejection::MalformedParameters);
    let twice = Request::get(format!("{url}?{form}&to=447700900009"))
        .body(Full::default())
        .unwrap();
    expect(&send(twice).await, Rejection::MalformedParameters);
    let not_utf8 = Request::get(format!("{url}?{form}&x=%FF%FE"))
        .body(Full::default())
        .unwrap();
    expect(&send(not_utf8).await, Rejection::MalformedParameters);
    let nested = Request::post(url.clone())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"text":{"a":1},"sig":"00"}"#,
        )))
        .unwrap();
    expect(&send(nested).await, Rejection::MalformedParameters);

    // Oversized, declared or not.
    let big = Request::post(url.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!(
            "{form}&pad={}",
            "x".repeat(5000)
        ))))
        .unwrap();
    expect(&send(big).await, Rejection::BodyTooLarge);

    // Delivered once; the same request again is a replay (409, after the first's 2xx).
    let once = inbound(method, "n-once");
    assert_eq!(
        deliver(addr, &once, Encoding::Query).await.status,
        StatusCode::OK
    );
    expect(
        &deliver(addr, &once, Encoding::Query).await,
        Rejection::ReplayedToken,
    );
    // The same message re-encoded as JSON is the same nonce: still a replay.
    expect(
        &deliver(addr, &once, Encoding::Json).await,
        Rejection::ReplayedToken,
    );
}

#[tokio::test]
async fn without_a_nonce_the_sig_is_the_replay_key() {
    let method = SignatureMethod::HmacSha1;
    let addr = server(method, API_KEY, SECRET, NOW).await;
    let mut params = SmsParams::from_pairs(
        inbound(method, "x")
            .iter()
            .filter(|(n, _)| *n != "nonce" && *n != "sig"),
    );
    let sig = method.sign(&params, SECRET.as_bytes());
    params.set("sig", sig.clone());
    let reply = deliver(addr, &params, Encoding::Form).await;
    let id = reply.json()["nonce"].as_str().unwrap().to_owned();
    // Derived from the sig, never the sig itself (it is an authenticator: logs must not carry it).
    assert!(id.starts_with("sig-sha256:") && !id.contains(&sig), "{id}");
    // The same sig in another case is the same request: still a replay.
    params.set("sig", sig.to_uppercase());
    assert_eq!(
        deliver(addr, &params, Encoding::Form).await.error(),
        "replayed_token"
    );
    params.set("sig", sig.clone());
    assert_eq!(
        deliver(addr, &params, Encoding::Form).await.error(),
        "replayed_token"
    );
}

/// The durable store keeps an SMS delivery across a restart (the file reopened by a new
/// server), as it does a JWT callback's.
#[tokio::test]
async fn a_delivered_sms_stays_delivered_in_the_sqlite_store_across_a_restart() {
    let dir = crate::common::example::TempDir::new("sms-sqlite");
    let file = dir.0.join("window.sqlite3");
    let method = SignatureMethod::HmacSha256;
    let params = inbound(method, "n-durable");
    let store = SqliteReplayStore::open(&file).unwrap();
    let addr = server_with(method, API_KEY, SECRET, NOW, store).await;
    assert_eq!(
        deliver(addr, &params, Encoding::Form).await.status,
        StatusCode::OK
    );
    let reopened = SqliteReplayStore::open(&file).unwrap();
    let addr = server_with(method, API_KEY, SECRET, NOW, reopened).await;
    let again = deliver(addr, &params, Encoding::Json).await;
    assert_eq!(again.error(), "replayed_token", "{again:?}");
}

/// Two instances on one Redis: an SMS delivered by one is a replay at the other.
#[cfg(feature = "redis")]
#[tokio::test]
async fn an_sms_delivered_by_one_instance_is_refused_by_the_other_through_redis() {
    use vonage_secure_callbacks::replay::RedisReplayStore;
    let redis = crate::common::redis_servers::RedisServer::start();
    let store = || async { RedisReplayStore::connect(&redis.url()).await.unwrap() };
    let method = SignatureMethod::Md5Hash;
    let a = server_with(method, API_KEY, SECRET, NOW, store().await).await;
    let b = server_with(method, API_KEY, SECRET, NOW, store().await).await;
    let params = inbound(method, "n-redis");
    assert_eq!(
        deliver(a, &params, Encoding::Query).await.status,
        StatusCode::OK
    );
    assert_eq!(
        deliver(b, &params, Encoding::Query).await.error(),
        "replayed_token"
    );
}
