//! `vonage-callbacks proxy` with a real upstream in another language (a Python standard-library
//! server, `upstream.py`, and its Node twin, `upstream.js`, that record exactly what they
//! received) on loopback: what reaches the upstream, what comes back, and when a callback counts
//! as delivered.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use vonage_secure_callbacks::test_util::CallbackSigner;

use support::*;

#[test]
fn verified_callbacks_reach_the_upstream_byte_for_byte_with_the_verified_facts() {
    let dir = scratch("proxy-bytes");
    byte_for_byte_through(Upstream::start(&dir, 0), "python", &dir);
}

#[test]
fn a_node_upstream_gets_the_same_bytes_and_facts() {
    let dir = scratch("proxy-bytes-node");
    byte_for_byte_through(Upstream::node(&dir), "node", &dir);
}

/// Three bodies (JSON, not UTF-8, 1 MiB) through the proxy to `upstream` (which says it is
/// `language` in `X-Upstream`): byte for byte, with the verified facts and none of the
/// client's `X-Vonage-*`; their replays and a forgery never reach it.
fn byte_for_byte_through(upstream: Upstream, language: &str, dir: &std::path::Path) {
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--body-limit", "2000000"],
        dir,
    );
    let mut not_utf8 = vec![0xff, 0xfe, 0x00, b'{'];
    not_utf8.extend((0..=255u8).cycle().take(3000));
    let bodies: [Vec<u8>; 3] = [
        br#"{"sessionId":"2_MX4","event":"connectionCreated"}"#.to_vec(),
        not_utf8,
        vec![b'x'; 1024 * 1024],
    ];
    for (i, body) in bodies.iter().enumerate() {
        let token = signer().token(body);
        let authorization = format!("Bearer {token}");
        let (status, headers, reply) = callback(
            &proxy,
            &format!("/vonage/video?n={i}"),
            &authorization,
            body,
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        assert_eq!(reply, b"upstream ok");
        assert_eq!(
            headers["x-upstream"], language,
            "the upstream's headers come back"
        );

        let received = upstream.received();
        let (path, got, got_body) = received.last().unwrap();
        assert_eq!(path, &format!("/vonage/video?n={i}"));
        assert_eq!(got_body, body, "byte for byte");
        let jti = token_claim(&token, "jti");
        assert_eq!(
            header(got, "x-vonage-jti"),
            Some(jti.as_str()),
            "the client's forgery is gone"
        );
        assert_eq!(header(got, "x-vonage-verified"), Some("1"));
        assert_eq!(header(got, "x-vonage-api-key"), Some(API_KEY));
        assert_eq!(
            header(got, "x-vonage-application-id"),
            Some("aaaaaaaa-bbbb-cccc-dddd-0123456789ab")
        );
        assert_eq!(header(got, "x-vonage-secret"), Some("current"));
        assert_eq!(header(got, "x-request-id"), Some("kept-end-to-end"));
        assert_eq!(header(got, "authorization"), None, "dropped by default");
        assert_eq!(got.iter().filter(|(n, _)| n == "x-vonage-jti").count(), 1);
        assert_eq!(
            header(got, "x-vonage-role"),
            None,
            "no X-Vonage-* of the client's passes"
        );

        // The same callback again: a replay, refused without reaching the upstream.
        let before = upstream.received().len();
        let (status, _, reply) = callback(&proxy, "/vonage/video", &authorization, body);
        assert_eq!(status, 409, "{}", String::from_utf8_lossy(&reply));
        assert_eq!(upstream.received().len(), before);
    }
    // A forgery never reaches it either.
    let forged =
        CallbackSigner::new(API_KEY, "not-the-secret-not-the-secret-not-000").authorization(b"{}");
    assert_eq!(callback(&proxy, "/vonage/video", &forged, b"{}").0, 401);
    assert_eq!(upstream.received().len(), 3);
}

/// A claim of a token, unverified (the test made the token).
fn token_claim(token: &str, name: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&json).unwrap();
    claims[name].as_str().unwrap().to_owned()
}

#[test]
fn the_upstreams_status_and_body_pass_through_and_decide_delivery() {
    let dir = scratch("proxy-statuses");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--keep-authorization"],
        &dir,
    );
    for (status, delivered) in [
        (500, false),
        (503, false),
        (404, false),
        (409, false),
        (201, true),
        (204, true),
    ] {
        let body = format!(r#"{{"case":{status}}}"#);
        let authorization = signer().authorization(body.as_bytes());
        let path = format!("/status/{status}");
        let (got, _, reply) = callback(&proxy, &path, &authorization, body.as_bytes());
        assert_eq!(got, status);
        if status != 204 {
            assert_eq!(reply, format!("upstream says {status}").as_bytes());
        }
        // Vonage's retry of the same callback: released (reaches the upstream again) unless
        // the upstream said 2xx.
        let before = upstream.received().len();
        let (again, _, _) = callback(&proxy, &path, &authorization, body.as_bytes());
        if delivered {
            assert_eq!(again, 409, "{status}");
            assert_eq!(upstream.received().len(), before, "{status}");
        } else {
            assert_eq!(again, status, "{status}");
            assert_eq!(upstream.received().len(), before + 1, "{status}");
        }
    }
    let received = upstream.received();
    assert!(
        header(&received[0].1, "authorization").is_some(),
        "--keep-authorization keeps it"
    );
}

#[test]
fn an_upstream_down_is_502_then_the_retry_is_delivered_once_it_is_back() {
    let dir = scratch("proxy-down");
    // A port nothing listens on (taken, then let go).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = Proxy::start(port, &["--replay-store", "memory"], &dir);
    let body = br#"{"event":"archive"}"#;
    let authorization = signer().authorization(body);
    let (status, _, reply) = callback(&proxy, "/vonage/archive", &authorization, body);
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(reply, br#"{"error":"upstream_unreachable"}"#);
    let upstream = Upstream::start(&dir, port);
    let (status, _, _) = callback(&proxy, "/vonage/archive", &authorization, body);
    assert_eq!(status, 200);
    assert_eq!(upstream.received().len(), 1);
    assert_eq!(
        callback(&proxy, "/vonage/archive", &authorization, body).0,
        409
    );
}

#[test]
fn a_hanging_upstream_is_504_and_the_callback_is_released() {
    let dir = scratch("proxy-hang");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--upstream-timeout", "1"],
        &dir,
    );
    let body = br#"{"event":"slow"}"#;
    let authorization = signer().authorization(body);
    // Within the helper's own 30 s bound: the hanging upstream would take 30 s to answer.
    let (status, _, reply) = callback(&proxy, "/hang", &authorization, body);
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&reply));
    // Released: the retry (to a path that answers) is delivered.
    assert_eq!(callback(&proxy, "/vonage/ok", &authorization, body).0, 200);
}

#[test]
fn an_answer_longer_than_the_body_limit_is_502_and_the_callback_released() {
    let dir = scratch("proxy-answer-limit");
    let upstream = Upstream::start(&dir, 0);
    // 16 bytes: the upstream's "upstream ok" (11) fits, its "upstream says 200" (17) does not.
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--body-limit", "16"],
        &dir,
    );
    let body = b"{}";
    let authorization = signer().authorization(body);
    let (status, _, reply) = callback(&proxy, "/status/200", &authorization, body);
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(reply, br#"{"error":"upstream_answer_too_large"}"#);
    // Released: the same callback, retried, is delivered.
    let (status, _, reply) = callback(&proxy, "/vonage/ok", &authorization, body);
    assert_eq!((status, reply.as_slice()), (200, &b"upstream ok"[..]));
    // And now it is a replay.
    assert_eq!(callback(&proxy, "/vonage/ok", &authorization, body).0, 409);
}

#[test]
fn a_chunked_answer_passes_whole_and_an_ambiguous_one_is_502_and_the_callback_released() {
    let dir = scratch("proxy-answer-framing");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(upstream.port, &["--replay-store", "memory"], &dir);
    let body = b"{}";
    let authorization = signer().authorization(body);
    let (status, headers, reply) = callback(&proxy, "/chunked/x", &authorization, body);
    assert_eq!((status, reply.as_slice()), (200, &b"upstream chunked"[..]));
    // Forwarded with the length of what was decoded.
    assert!(!headers.contains_key("transfer-encoding"));
    assert_eq!(headers["content-length"], "16");
    // Both a length and chunks: which one frames it is what response splitting plays on.
    let authorization = signer().authorization(body);
    let (status, _, reply) = callback(&proxy, "/ambiguous/x", &authorization, body);
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(reply, br#"{"error":"upstream_answer_invalid"}"#);
    // Released: the same callback, retried, is delivered, and then it is a replay.
    assert_eq!(callback(&proxy, "/vonage/ok", &authorization, body).0, 200);
    assert_eq!(callback(&proxy, "/vonage/ok", &authorization, body).0, 409);
}

#[test]
fn a_client_that_sends_no_head_or_trickles_one_is_closed_after_the_head_timeout() {
    use std::io::{Read, Write};
    let dir = scratch("proxy-head-timeout");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--head-timeout", "1"],
        &dir,
    );
    // One connection says nothing at all.
    let mut silent = std::net::TcpStream::connect(&proxy.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Another sends a head a few bytes at a time, never finishing it.
    let addr = proxy.addr.clone();
    let trickle = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        let began = Instant::now();
        stream
            .write_all(b"POST /vonage/video HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        // Bounded: at most 50 bytes, 200 ms apart.
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(200));
            if stream.write_all(b"a").is_err() {
                return Some(began.elapsed());
            }
        }
        None
    });
    // Meanwhile a genuine callback on its own connection is served.
    let body = br#"{"event":"prompt"}"#;
    let authorization = signer().authorization(body);
    assert_eq!(callback(&proxy, "/vonage/ok", &authorization, body).0, 200);
    let mut rest = Vec::new();
    // End of stream, not the read timeout: the proxy closed it.
    silent.read_to_end(&mut rest).unwrap();
    // Closed while still trickling (its 50 bytes would take 10 s).
    trickle
        .join()
        .unwrap()
        .expect("the trickling client was closed");
    // Neither reached the upstream.
    assert_eq!(upstream.received().len(), 1);
}

#[test]
fn a_callback_in_flight_longer_than_the_head_timeout_is_answered_then_the_quiet_connection_closed()
{
    use std::io::{Read, Write};
    let dir = scratch("proxy-head-timeout-busy");
    let upstream = Upstream::start(&dir, 0);
    // Two workers: the watchdog and the connection on a multi-threaded runtime (the other
    // head-timeout test has the default, one).
    let proxy = Proxy::start(
        upstream.port,
        &[
            "--replay-store",
            "memory",
            "--head-timeout",
            "1",
            "--upstream-timeout",
            "2",
            "--workers",
            "2",
        ],
        &dir,
    );
    let body = br#"{"event":"slow"}"#;
    let authorization = signer().authorization(body);
    let mut stream = std::net::TcpStream::connect(&proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    // Kept alive: the proxy, not the client, ends this connection.
    write!(
        stream,
        "POST /hang HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    // End of stream, not the read timeout: the answer, then the proxy's close.
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    // Two seconds in flight, twice the head timeout: answered (the upstream's timeout), not cut,
    // and then, quiet, closed.
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("upstream_timeout"), "{answer}");
}

#[test]
fn sigterm_lets_callbacks_in_flight_finish_then_exits_0() {
    let dir = scratch("proxy-sigterm");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(upstream.port, &["--replay-store", "memory"], &dir);
    let addr = proxy.addr.clone();
    let in_flight: Vec<_> = (0..3)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let body = format!(r#"{{"n":{i}}}"#);
                let authorization = signer().authorization(body.as_bytes());
                send(
                    "POST",
                    &format!("http://{addr}/slow/{i}"),
                    &[("authorization", &authorization)],
                    body.as_bytes(),
                )
                .0
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let status = proxy.terminate();
    let answers: Vec<u16> = in_flight.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        answers,
        [200, 200, 200],
        "each callback in flight was answered"
    );
    assert!(status.success(), "{status}");
    assert_eq!(upstream.received().len(), 3);
}

#[test]
fn a_replay_is_refused_across_a_proxy_restart_with_the_durable_store() {
    let dir = scratch("proxy-restart");
    let upstream = Upstream::start(&dir, 0);
    let store = ["--replay-store", "sqlite:window.sqlite3"];
    let body = br#"{"event":"durable"}"#;
    let authorization = signer().authorization(body);
    let proxy = Proxy::start(upstream.port, &store, &dir);
    assert_eq!(callback(&proxy, "/v", &authorization, body).0, 200);
    assert!(proxy.terminate().success());
    let proxy = Proxy::start(upstream.port, &store, &dir);
    assert_eq!(callback(&proxy, "/v", &authorization, body).0, 409);
    assert_eq!(upstream.received().len(), 1);
}

#[test]
fn healthz_and_metrics_on_the_admin_listener() {
    let dir = scratch("proxy-admin");
    let upstream = Upstream::start(&dir, 0);
    // Two workers here: the multi-thread runtime serves as the default single one does.
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--workers", "2"],
        &dir,
    );
    let (status, _, body) = send("GET", &format!("http://{}/healthz", proxy.admin), &[], b"");
    assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));
    let body = br#"{"event":"counted"}"#;
    let authorization = signer().authorization(body);
    assert_eq!(callback(&proxy, "/status/201", &authorization, body).0, 201);
    assert_eq!(callback(&proxy, "/status/201", &authorization, body).0, 409);
    let (status, _, text) = send("GET", &format!("http://{}/metrics", proxy.admin), &[], b"");
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    // Prometheus text: `name{labels} value`, every sample line parses.
    let samples: Vec<(&str, f64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name, value.parse::<f64>().unwrap())
        })
        .collect();
    let value = |prefix: &str| {
        samples
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    assert_eq!(value("vonage_callbacks_accepted_total"), 1.0, "{text}");
    assert_eq!(
        value("vonage_callbacks_refused_total{reason=\"replayed_token\""),
        1.0,
        "{text}"
    );
    assert_eq!(
        value("vonage_proxy_upstream_responses_total{status=\"201\"}"),
        1.0,
        "{text}"
    );
    assert!(text.contains("vonage_proxy_upstream_seconds"), "{text}");
}

#[test]
fn sms_paths_are_verified_by_their_method_and_forwarded() {
    use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams};
    let dir = scratch("proxy-sms");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--sms", "/vonage/sms=sha1"],
        &dir,
    );
    let mut params = SmsParams::from_pairs([
        ("msisdn", "447700900001"),
        ("text", "Hi & bye"),
        ("nonce", "n-proxy"),
    ]);
    use vonage_secure_callbacks::Clock;
    params.set(
        "timestamp",
        vonage_secure_callbacks::SystemClock.now().to_string(),
    );
    let sig = SignatureMethod::HmacSha1.sign(&params, SECRET.as_bytes());
    params.set("sig", sig);
    let url = format!("http://{}/vonage/sms?{}", proxy.addr, params.to_form());
    assert_eq!(send("GET", &url, &[], b"").0, 200);
    let received = upstream.received();
    let (path, headers, _) = received.last().unwrap();
    assert!(path.starts_with("/vonage/sms?msisdn="), "{path}");
    assert_eq!(header(headers, "x-vonage-nonce"), Some("n-proxy"));
    assert_eq!(send("GET", &url, &[], b"").0, 409);
    // Signed by another method than the path's: refused.
    let sha256 = SignatureMethod::HmacSha256.sign(
        &SmsParams::from_pairs(params.iter().filter(|(n, _)| *n != "sig")),
        SECRET.as_bytes(),
    );
    let mut other = params.clone();
    other.set("sig", sha256);
    other.set("nonce", "n-other");
    let url = format!("http://{}/vonage/sms?{}", proxy.addr, other.to_form());
    assert_eq!(send("GET", &url, &[], b"").0, 401);
}

#[test]
fn a_bad_configuration_fails_at_start_naming_the_setting_and_no_secret_is_shown() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vonage-callbacks"))
            .env("VONAGE_API_KEY", API_KEY)
            .env("VONAGE_SIGNATURE_SECRET", SECRET)
            .env(
                "VONAGE_REPLAY_STORE",
                "redis://user:a-redis-password@127.0.0.1:1/",
            )
            .arg("proxy")
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(SECRET) && !text.contains("a-redis-password"),
            "{text}"
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&[
        "--upstream",
        "http://127.0.0.1:1",
        "--sms",
        "/vonage/sms=sha384",
        "--replay-store",
        "memory",
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--sms"), "{text}");
    let (code, text) = run(&[
        "--upstream",
        "http://127.0.0.1:1",
        "--workers",
        "0",
        "--replay-store",
        "memory",
    ]);
    assert_eq!(code, Some(2));
    assert!(text.contains("--workers"), "{text}");
    for setting in ["--head-timeout", "--upstream-timeout"] {
        let (code, text) = run(&[
            "--upstream",
            "http://127.0.0.1:1",
            setting,
            "0",
            "--replay-store",
            "memory",
        ]);
        assert_eq!(code, Some(2));
        assert!(text.contains(setting), "{text}");
    }
    let (code, text) = run(&["--upstream", "ftp://x", "--replay-store", "memory"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("--upstream"), "{text}");
    let (code, text) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("--upstream") && text.contains("VONAGE_PROXY_UPSTREAM"),
        "{text}"
    );
}

#[test]
fn tls_is_terminated_with_the_given_certificate_and_key() {
    let dir = scratch("proxy-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl makes a test certificate");
    assert!(made.success());
    let upstream = Upstream::start(&dir, 0);
    let tls = [
        "--replay-store",
        "memory",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let proxy = Proxy::start(upstream.port, &tls, &dir);
    let body = dir.join("body.json");
    std::fs::write(&body, br#"{"event":"over-tls"}"#).unwrap();
    let authorization = signer().authorization(br#"{"event":"over-tls"}"#);
    let curl = |scheme: &str| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(&cert)
            .args(["-H", &format!("Authorization: {authorization}")])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("{scheme}://{}/vonage/video", proxy.addr))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        if code == "000" {
            eprintln!("curl: {}", String::from_utf8_lossy(&out.stderr));
        }
        code
    };
    assert_eq!(curl("https"), "200");
    assert_eq!(curl("https"), "409", "a replay over TLS is refused as well");
    assert_ne!(
        curl("http"),
        "200",
        "plain HTTP is not served on the TLS port"
    );
    assert_eq!(upstream.received().len(), 1);
    assert!(proxy.terminate().success());

    // A key that is not one stops the proxy at start, naming the setting.
    std::fs::write(&key, "not a key").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vonage-callbacks"))
        .env("VONAGE_API_KEY", API_KEY)
        .env("VONAGE_SIGNATURE_SECRET", SECRET)
        .args([
            "proxy",
            "--upstream",
            "http://127.0.0.1:1",
            "--replay-store",
            "memory",
        ])
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-key"),
        "{out:?}"
    );
}

#[test]
fn json_logs_give_one_line_per_callback_with_its_reason_and_upstream() {
    let dir = scratch("proxy-logs");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--json-logs"],
        &dir,
    );
    let body = br#"{"event":"logged"}"#;
    let authorization = signer().authorization(body);
    assert_eq!(callback(&proxy, "/status/202", &authorization, body).0, 202);
    // Lines are written in batches: this one within 100 ms, while the proxy runs on.
    let written = || std::fs::read_to_string(dir.join("proxy.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !written().contains(r#""message":"forwarded""#) {
        assert!(Instant::now() < deadline, "never written: {}", written());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(callback(&proxy, "/status/202", &authorization, body).0, 409);
    // And the replay's line, logged just before the proxy is told to stop, by its exit.
    assert!(proxy.terminate().success());
    let log = written();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{err}: {l}")))
        .collect();
    let message = |v: &serde_json::Value| v["fields"]["message"].as_str().unwrap_or("").to_owned();
    let forwarded: Vec<_> = lines.iter().filter(|v| message(v) == "forwarded").collect();
    assert_eq!(forwarded.len(), 1, "{log}");
    let f = &forwarded[0]["fields"];
    assert_eq!(
        (f["api_key"].as_str(), f["upstream"].as_str()),
        (Some(API_KEY), Some("202")),
        "{log}"
    );
    assert!(
        f["upstream_ms"].is_u64() && f["id"].as_str().unwrap().len() == 36,
        "{log}"
    );
    let refused: Vec<_> = lines
        .iter()
        .filter(|v| message(v) == "callback rejected")
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert_eq!(refused[0]["fields"]["reason"], "replayed_token", "{log}");
    assert!(!log.contains(SECRET) && !log.contains("Bearer"), "{log}");
}

#[test]
fn text_logs_give_one_line_per_callback_and_no_request_can_add_one() {
    let dir = scratch("proxy-text-logs");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(upstream.port, &["--replay-store", "memory"], &dir);
    let body = br#"{"event":"logged"}"#;
    assert_eq!(
        callback(&proxy, "/", &signer().authorization(body), body).0,
        200
    );
    // A token whose key would, written as it is, add a line of its own to the log.
    let injected = "k\n2026-01-01T00:00:00.000000Z  INFO vonage_callbacks::proxy: forwarded";
    let forger = CallbackSigner::new(injected, SECRET);
    let (status, _, reply) = callback(&proxy, "/", &forger.authorization(body), body);
    assert_eq!(
        (
            status,
            String::from_utf8_lossy(&reply).contains("unknown_api_key")
        ),
        (401, true)
    );
    assert!(proxy.terminate().success());
    let log = std::fs::read_to_string(dir.join("proxy.log")).unwrap();
    // Every line is one event: its time, then its level.
    for line in log.lines() {
        assert!(line.len() > 27 && line.as_bytes()[26] == b'Z', "{log}");
    }
    let forwarded = log
        .lines()
        .filter(|l| l[27..].starts_with("  INFO vonage_callbacks::proxy: forwarded api_key="))
        .count();
    assert_eq!(forwarded, 1, "{log}");
    assert!(log.contains(&format!("api_key={injected:?}")), "{log}");
    assert!(!log.contains(SECRET) && !log.contains("Bearer"), "{log}");
}

/// The library's attack suites, in order, through the proxy: each gets the answer the
/// library's own server gives it, and only the genuine ones reach the upstream.
#[test]
fn the_attack_suites_get_the_same_answers_through_the_proxy() {
    use vonage_secure_callbacks::sms::SignatureMethod;
    use vonage_secure_callbacks::test_util::{jwt_attacks, sms_attacks, Expected};
    let dir = scratch("proxy-attacks");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(
        upstream.port,
        &["--replay-store", "memory", "--sms", "/vonage/sms=sha256"],
        &dir,
    );
    let mut suite = jwt_attacks(&CallbackSigner::new(API_KEY, SECRET), "/vonage/session");
    suite.extend(sms_attacks(
        API_KEY,
        SECRET,
        SignatureMethod::HmacSha256,
        "/vonage/sms",
    ));
    let origin = format!("http://{}", proxy.addr);
    let mut wrong = Vec::new();
    for attack in &suite {
        // Read while the body is written: a body refused by its declared length is answered
        // unread, and the connection then closed.
        let (status, body) = attack.send(&origin).expect("an answer");
        if let Err(why) = attack.check(status, &body) {
            wrong.push(why);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} attacks got the wrong answer:\n{}",
        wrong.len(),
        suite.len(),
        wrong.join("\n")
    );
    let genuine = suite
        .iter()
        .filter(|a| a.expected() == Expected::Accepted)
        .count();
    assert!(suite.len() >= 200 && genuine >= 10);
    assert_eq!(upstream.received().len(), genuine, "only the genuine ones");
}

#[test]
fn the_start_lines_say_where_it_listens_which_store_and_which_secrets() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("proxy-start-lines");
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_vonage-callbacks"))
            .current_dir(&dir)
            .env("VONAGE_API_KEY", API_KEY)
            .env("VONAGE_SIGNATURE_SECRET", SECRET)
            .env("VONAGE_SIGNATURE_SECRET_PREVIOUS", OTHER_SECRET)
            .args(["proxy", "--upstream", "http://127.0.0.1:1"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--replay-store", "sqlite:window.sqlite3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("proxy.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut text = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("proxy: api key") {
            break;
        }
    }
    assert!(
        text.starts_with("proxy: listening on http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("proxy: 127.0.0.1 is a loopback address: Vonage cannot reach it"),
        "{text}"
    );
    let window = std::fs::canonicalize(dir.join("window.sqlite3")).unwrap();
    assert!(
        text.contains(&format!(
            "proxy: replay store sqlite:{} (kept across restarts)",
            window.display()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("proxy: api key 47123456, secrets current, previous\n"),
        "{text}"
    );
    assert!(
        !text.contains(SECRET) && !text.contains(OTHER_SECRET),
        "{text}"
    );
}

#[test]
fn healthcheck_says_healthy_while_the_proxy_serves_and_unhealthy_once_it_is_gone() {
    let dir = scratch("proxy-healthcheck");
    let upstream = Upstream::start(&dir, 0);
    let proxy = Proxy::start(upstream.port, &["--replay-store", "memory"], &dir);
    let check = |admin: &str| {
        Command::new(env!("CARGO_BIN_EXE_vonage-callbacks"))
            .args(["healthcheck", "--admin", admin])
            .env_remove("VONAGE_PROXY_ADMIN_LISTEN")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let admin = proxy.admin.clone();
    let healthy = check(&admin);
    assert!(healthy.status.success(), "{healthy:?}");
    assert!(proxy.terminate().success());
    let gone = check(&admin);
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    let said = String::from_utf8_lossy(&gone.stderr);
    assert!(
        said.starts_with(&format!("unhealthy: http://{admin}/healthz")),
        "{said}"
    );
}

/// The systemd unit's command, as systemd would run it: its environment, the secret as a
/// credential file and the window in the state directory (the addresses moved to free ports).
#[test]
fn the_systemd_units_command_serves_with_the_credential_and_the_state_directory() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("proxy-systemd-unit");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/systemd/vonage-callbacks-proxy.service"),
    )
    .unwrap();
    let (credentials, state) = (dir.join("credentials"), dir.join("state"));
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(credentials.join("signature-secret"), format!("{SECRET}\n")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/vonage-callbacks "))
        .unwrap()
        .replace("${CREDENTIALS_DIRECTORY}", credentials.to_str().unwrap())
        .replace("${STATE_DIRECTORY}", state.to_str().unwrap());
    let upstream = Upstream::start(&dir, 0);
    let mut command = Command::new(env!("CARGO_BIN_EXE_vonage-callbacks"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for setting in unit.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let (name, value) = setting.split_once('=').unwrap();
        command.env(name, value);
    }
    let mut child = Killed(
        command
            .env("VONAGE_API_KEY", API_KEY)
            .env("VONAGE_PROXY_LISTEN", "127.0.0.1:0")
            .env("VONAGE_PROXY_ADMIN_LISTEN", "127.0.0.1:0")
            .env(
                "VONAGE_PROXY_UPSTREAM",
                format!("http://127.0.0.1:{}", upstream.port),
            )
            .args(exec.split_whitespace())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("proxy.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut addr = String::new();
    let mut said = String::new();
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("proxy: listening on http://") {
            addr = rest.split(',').next().unwrap().to_owned();
        }
        said.push_str(&line);
        said.push('\n');
        if line.starts_with("proxy: api key") {
            break;
        }
    }
    assert!(
        said.contains(&format!(
            "sqlite:{}",
            state.join("replay-window.sqlite3").display()
        )),
        "{said}"
    );
    assert!(said.contains("secrets signature-secret"), "{said}");
    let body = br#"{"event":"under-systemd"}"#;
    let url = format!("http://{addr}/vonage/events");
    let authorization = signer().authorization(body);
    let headers = [("authorization", authorization.as_str())];
    assert_eq!(send("POST", &url, &headers, body).0, 200);
    assert_eq!(send("POST", &url, &headers, body).0, 409);
    assert!(state.join("replay-window.sqlite3").exists());
}
