//! Every rejection code, reached through a real axum (or hyper) server over loopback.

use crate::common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use common::*;
use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vonage_secure_callbacks::{MemoryReplayStore, Rejection};

/// Codes seen by the checks below; the test checks that none is missing.
static SEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn expect(reply: &Reply, rejection: Rejection) {
    assert_eq!(reply.status, rejection.status(), "{rejection}: {reply:?}");
    assert_eq!(reply.error(), rejection.code(), "{reply:?}");
    assert_eq!(reply.headers["content-type"], "application/json");
    if rejection.status() == StatusCode::SERVICE_UNAVAILABLE {
        assert!(reply.headers.contains_key("retry-after"), "{reply:?}");
    }
    // RFC 6750 §3: every 401 carries the Bearer challenge with the code.
    let challenge = reply.headers.get("www-authenticate");
    if rejection.status() == StatusCode::UNAUTHORIZED {
        let expected = format!(
            r#"Bearer error="invalid_token", error_description="{}""#,
            rejection.code()
        );
        assert_eq!(challenge.unwrap(), expected.as_str(), "{reply:?}");
    } else {
        assert!(challenge.is_none(), "{reply:?}");
    }
    SEEN.lock().unwrap().push(rejection.code());
}

const BODY: &[u8] = br#"{"sessionId":"1_MX4","event":"connectionCreated"}"#;

async fn token_rejections() {
    let addr = serve_axum(echo_app(layer())).await;
    let other_alg = |alg: &str| {
        let token = token_at_now(BODY, |_| {});
        let (_, rest) = token.split_once('.').unwrap();
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        format!("Bearer {header}.{rest}")
    };
    let cases: Vec<(Option<String>, Rejection)> = vec![
        (None, Rejection::MissingToken),
        (Some("Basic dXNlcjpwYXNz".into()), Rejection::MalformedToken),
        (Some("Bearer not-a-jwt".into()), Rejection::MalformedToken),
        (
            Some(format!(
                "Bearer {}",
                signer().sign_json(
                    r#"{"alg":"HS256"}"#,
                    json!({"iat": "now", "jti": "j", "api_key": API_KEY}).to_string()
                )
            )),
            Rejection::MalformedToken,
        ),
        (Some(other_alg("none")), Rejection::UnsupportedAlgorithm),
        (Some(other_alg("HS512")), Rejection::UnsupportedAlgorithm),
        (Some(other_alg("RS256")), Rejection::UnsupportedAlgorithm),
        (
            Some(format!(
                "Bearer {}",
                token_at_now(BODY, |c| {
                    c.insert("api_key".into(), json!("someone-else"));
                })
            )),
            Rejection::UnknownApiKey,
        ),
        (
            Some(format!(
                "Bearer {}",
                vonage_secure_callbacks::test_util::CallbackSigner::new(
                    API_KEY,
                    "a-different-secret-a-different-secret"
                )
                .token_with(BODY, |c| {
                    c.insert("iat".into(), json!(NOW));
                })
            )),
            Rejection::BadSignature,
        ),
        (
            Some(format!(
                "Bearer {}",
                token_at_now(BODY, |c| {
                    c.insert("iss".into(), json!("Nexmo"));
                })
            )),
            Rejection::BadIssuer,
        ),
        (
            Some(format!(
                "Bearer {}",
                token_at_now(BODY, |c| {
                    c.insert("iat".into(), json!(NOW - 24 * 3600 - 1));
                })
            )),
            Rejection::StaleToken,
        ),
        (
            Some(format!(
                "Bearer {}",
                token_at_now(BODY, |c| {
                    c.insert("exp".into(), json!(NOW - 3600));
                })
            )),
            Rejection::StaleToken,
        ),
        (
            Some(format!(
                "Bearer {}",
                token_at_now(BODY, |c| {
                    c.insert("iat".into(), json!(NOW + 3600));
                })
            )),
            Rejection::TokenFromFuture,
        ),
        (
            Some(format!(
                "Bearer {}",
                token_at_now(BODY, |c| {
                    c.remove("payload_hash");
                })
            )),
            Rejection::MissingPayloadHash,
        ),
        (
            Some(format!("Bearer {}", token_at_now(b"another body", |_| {}))),
            Rejection::PayloadHashMismatch,
        ),
    ];
    for (auth, rejection) in cases {
        let reply = post(addr, auth.as_deref(), BODY).await;
        expect(&reply, rejection);
    }
}

async fn replay_rejections() {
    let addr = serve_axum(echo_app(layer())).await;
    let auth = bearer(BODY);
    assert_eq!(post(addr, Some(&auth), BODY).await.status, StatusCode::OK);
    expect(
        &post(addr, Some(&auth), BODY).await,
        Rejection::ReplayedToken,
    );

    // A store with no room: a verified callback cannot be recorded, so it is not accepted.
    let full = layer().replay_store(MemoryReplayStore::with_capacity(0));
    let addr = serve_axum(echo_app(full)).await;
    expect(
        &post(addr, Some(&bearer(BODY)), BODY).await,
        Rejection::ReplayStoreUnavailable,
    );

    // A small store that had to forget its oldest callbacks: a replay of one is refused.
    let clock = clock();
    let small =
        layer_with(|v| v.clock(clock.clone())).replay_store(MemoryReplayStore::with_capacity(16));
    let addr = serve_axum(echo_app(small)).await;
    let old: Vec<String> = (0..16).map(|_| bearer(BODY)).collect();
    for auth in &old {
        assert_eq!(post(addr, Some(auth), BODY).await.status, StatusCode::OK);
    }
    clock.advance(120);
    let fresh = token_at_now(BODY, |c| {
        c.insert("iat".into(), serde_json::json!(NOW + 120));
    });
    let fresh = format!("Bearer {fresh}");
    assert_eq!(post(addr, Some(&fresh), BODY).await.status, StatusCode::OK);
    expect(
        &post(addr, Some(&old[0]), BODY).await,
        Rejection::ReplayWindowExceeded,
    );
}

async fn duplicate_in_flight() {
    // The handler holds the first delivery until the duplicate has been answered.
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let app = axum::Router::new()
        .route(
            "/{*path}",
            axum::routing::post(move || {
                let mut rx = release_rx.clone();
                async move {
                    let _ = rx.wait_for(|released| *released).await;
                    StatusCode::OK
                }
            }),
        )
        .layer(layer());
    let addr = serve_axum(app).await;
    let auth = bearer(BODY);
    let first = tokio::spawn({
        let auth = auth.clone();
        async move { post(addr, Some(&auth), BODY).await }
    });
    // Bounded wait for the first delivery to reserve its jti.
    let mut second = None;
    for _ in 0..200 {
        let reply = post(addr, Some(&auth), BODY).await;
        if reply.error() == Rejection::DuplicateInFlight.code() {
            second = Some(reply);
            break;
        }
        assert_eq!(
            reply.error(),
            "",
            "only in-flight or nothing yet: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    expect(
        &second.expect("the duplicate was seen"),
        Rejection::DuplicateInFlight,
    );
    release_tx.send(true).unwrap();
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
}

async fn body_too_large_declared_and_chunked() {
    let addr = serve_axum(echo_app(layer_with(|v| v.body_limit(64)))).await;
    let big = vec![b'x'; 65];
    expect(
        &post(addr, Some(&bearer(&big)), big.clone()).await,
        Rejection::BodyTooLarge,
    );
    // Exactly the limit passes (inclusive).
    let exact = vec![b'x'; 64];
    assert_eq!(
        post(addr, Some(&bearer(&exact)), exact).await.status,
        StatusCode::OK
    );

    // Chunked: no Content-Length, the limit is found while reading.
    let body = vec![b'y'; 100];
    let chunks = body
        .chunks(20)
        .map(Bytes::copy_from_slice)
        .collect::<Vec<_>>();
    expect(
        &post_chunked(addr, &bearer(&body), chunks).await,
        Rejection::BodyTooLarge,
    );
    let exact = vec![b'y'; 64];
    let chunks = exact
        .chunks(20)
        .map(Bytes::copy_from_slice)
        .collect::<Vec<_>>();
    assert_eq!(
        post_chunked(addr, &bearer(&exact), chunks).await.status,
        StatusCode::OK
    );
}

async fn body_read_error_when_the_client_stops_sending() {
    // Raw hyper with half-close, so the client can still read the answer after it stops writing.
    let addr = serve_hyper(
        tower::ServiceBuilder::new()
            .layer(layer())
            .service(jti_service()),
    )
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /x HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\ncontent-length: 100\r\n\r\n",
        bearer(BODY)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&BODY[..10]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"body_read_error"}"#),
        "{answer}"
    );
    SEEN.lock().unwrap().push(Rejection::BodyReadError.code());
}

#[tokio::test]
async fn missing_token_status_is_configurable_and_hook_replaces_the_response() {
    let addr = serve_axum(echo_app(
        layer().on_rejection(
            vonage_secure_callbacks::DefaultRejection::default()
                .missing_token_status(StatusCode::UNAUTHORIZED),
        ),
    ))
    .await;
    let reply = post(addr, None, BODY).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "missing_token");

    let custom = layer().on_rejection(|r: Rejection| {
        http::Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header("x-reason", r.code())
            .body(Bytes::from_static(b"no"))
            .unwrap()
    });
    let addr = serve_axum(echo_app(custom)).await;
    let reply = post(addr, Some("Bearer x.y.z"), BODY).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.headers["x-reason"], "malformed_token");
    assert_eq!(reply.body, "no");
}

#[tokio::test]
async fn rejection_is_in_response_extensions_for_outer_layers() {
    let app = axum::Router::new()
        .route("/{*p}", axum::routing::post(echo))
        .layer(layer())
        .layer(axum::middleware::map_response(
            |mut res: axum::response::Response| async move {
                if let Some(code) = res.extensions().get::<Rejection>().map(|r| r.code()) {
                    res.headers_mut().insert("x-seen", code.parse().unwrap());
                }
                res
            },
        ));
    let addr = serve_axum(app).await;
    let reply = post(addr, Some("Bearer x.y.z"), BODY).await;
    assert_eq!(reply.headers["x-seen"], "malformed_token");
}

#[tokio::test]
async fn every_rejection_code_through_a_real_server() {
    token_rejections().await;
    replay_rejections().await;
    duplicate_in_flight().await;
    body_too_large_declared_and_chunked().await;
    body_read_error_when_the_client_stops_sending().await;
    crate::sms_server::sms_rejections(expect).await;
    let all: HashSet<&str> = Rejection::ALL.iter().map(|r| r.code()).collect();
    let seen: HashSet<&str> = SEEN.lock().unwrap().iter().copied().collect();
    assert_eq!(
        all.difference(&seen).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "codes never reached"
    );
}

#[tokio::test]
async fn strict_token_parsing_through_a_server() {
    // Validly signed, but not what RFC 7515 and Vonage's scheme allow: each is malformed.
    let addr = serve_axum(echo_app(layer())).await;
    let claims = |extra: &str| {
        format!(
            r#"{{"iat":{NOW},"jti":"{}","iss":"Vonage","api_key":"{API_KEY}","payload_hash":"{}"{extra}}}"#,
            vonage_secure_callbacks::test_util::fresh_jti(),
            vonage_secure_callbacks::payload_hash(BODY),
        )
    };
    let ok = signer().sign_json(r#"{"alg":"HS256","typ":"JWT"}"#, claims(""));
    assert_eq!(
        post(addr, Some(&format!("Bearer {ok}")), BODY).await.status,
        StatusCode::OK
    );
    let mut bad_utf8 = claims("").into_bytes();
    bad_utf8.truncate(bad_utf8.len() - 1);
    bad_utf8.extend_from_slice(b",\"note\":\"\xff\"}");
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (
            br#"{"alg":"HS256","b64":false,"crit":["b64"]}"#.to_vec(),
            claims("").into_bytes(),
        ),
        (
            br#"{"alg":"HS256","crit":["exp"]}"#.to_vec(),
            claims("").into_bytes(),
        ),
        (br#"["HS256","JWT"]"#.to_vec(), claims("").into_bytes()),
        (
            b"{\"alg\":\"HS256\",\"kid\":\"\xc3\x28\"}".to_vec(),
            claims("").into_bytes(),
        ),
        (
            br#"{"alg":"HS256","typ":"JWT"}"#.to_vec(),
            format!(r#"[{NOW},"j","Vonage"]"#).into_bytes(),
        ),
        (br#"{"alg":"HS256","typ":"JWT"}"#.to_vec(), bad_utf8),
    ];
    for (header, claims) in cases {
        let token = signer().sign_json(&header, &claims);
        let reply = post(addr, Some(&format!("Bearer {token}")), BODY).await;
        assert_eq!(
            reply.error(),
            "malformed_token",
            "{} . {}",
            String::from_utf8_lossy(&header),
            String::from_utf8_lossy(&claims)
        );
    }
}

/// Answers with the facts of each refusal, as a user's own hook would log or return them.
struct Facts;

impl vonage_secure_callbacks::OnRejection for Facts {
    fn response(&self, rejection: Rejection) -> http::Response<Bytes> {
        http::Response::new(Bytes::from(rejection.code()))
    }

    fn response_with_details(
        &self,
        rejection: Rejection,
        d: &vonage_secure_callbacks::RejectionDetails,
    ) -> http::Response<Bytes> {
        let body = json!({
            "error": rejection.code(),
            "api_key": d.api_key, "jti": d.jti, "secrets_tried": d.secrets_tried,
            "configured_api_keys": d.configured_api_keys, "iat_offset_secs": d.iat_offset_secs,
            "body_len": d.body_len, "content_encoding": d.content_encoding,
            "delivered_at": d.delivered_at,
        });
        http::Response::new(Bytes::from(body.to_string()))
    }
}

#[tokio::test]
async fn refusals_carry_the_facts_that_point_to_their_cause() {
    let addr = serve_axum(echo_app(layer().on_rejection(Facts))).await;
    let post_with = |auth: String, body: &'static [u8], encoding: Option<&'static str>| {
        let mut req =
            http::Request::post(format!("http://{addr}/cb")).header("authorization", auth);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        send(
            req.body(http_body_util::Full::new(Bytes::from_static(body)))
                .unwrap(),
        )
    };

    // Wrong secret: which key, how many secrets were tried, how old the token is.
    let forged = vonage_secure_callbacks::test_util::CallbackSigner::new(
        API_KEY,
        "not-our-secret-not-our-secret-0000",
    )
    .token_with(BODY, |c| {
        c.insert("iat".into(), json!(NOW - 90));
    });
    let f = post_with(format!("Bearer {forged}"), BODY, None)
        .await
        .json();
    assert_eq!(f["error"], "bad_signature");
    assert_eq!(
        (f["api_key"].as_str(), f["secrets_tried"].as_u64()),
        (Some(API_KEY), Some(1))
    );
    assert_eq!(f["iat_offset_secs"], 90);

    // A proxy that re-encoded the body: its length and Content-Encoding.
    let f = post_with(bearer(BODY), b"\x1f\x8b\x08\x00", Some("gzip"))
        .await
        .json();
    assert_eq!(f["error"], "payload_hash_mismatch");
    assert_eq!(
        (f["body_len"].as_u64(), f["content_encoding"].as_str()),
        (Some(4), Some("gzip"))
    );

    // A clock a day off: the offset says so.
    let stale = token_at_now(BODY, |c| {
        c.insert("iat".into(), json!(NOW - 100_000));
    });
    let f = post_with(format!("Bearer {stale}"), BODY, None)
        .await
        .json();
    assert_eq!(
        (f["error"].as_str(), f["iat_offset_secs"].as_i64()),
        (Some("stale_token"), Some(100_000))
    );

    // Another project's callback: the keys that are configured.
    let other = token_at_now(BODY, |c| {
        c.insert("api_key".into(), json!("zzzz9999"));
    });
    let f = post_with(format!("Bearer {other}"), BODY, None)
        .await
        .json();
    assert_eq!(f["error"], "unknown_api_key");
    assert_eq!(f["api_key"], "zzzz9999");
    assert_eq!(f["configured_api_keys"], json!([API_KEY]));

    // A replay: its jti, and when the first one was delivered (the test's clock stands still).
    let token = token_at_now(BODY, |_| {});
    let auth = format!("Bearer {token}");
    assert_eq!(
        post_with(auth.clone(), BODY, None).await.status,
        StatusCode::OK
    );
    let f = post_with(auth, BODY, None).await.json();
    assert_eq!(f["error"], "replayed_token");
    assert_eq!(f["jti"].as_str(), claim_of(&token, "jti").as_deref());
    assert_eq!(f["delivered_at"].as_u64(), Some(NOW));
}
