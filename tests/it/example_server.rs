//! The README's main job, as a newcomer runs it: start `examples/callback_server`, run the `curl`
//! command it prints, exactly as printed, and get the verified claims back.

use crate::common;

use common::example::{address, run_printed_curl, run_to_exit, start};

#[test]
fn printed_curl_is_accepted_once_then_refused_as_a_replay() {
    let (_server, lines) = start(&[]);
    assert!(
        lines.iter().any(|l| l.contains("development secret")),
        "says that it made up a secret: {lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("listening on http://127.0.0.1:")));
    let curl = lines.last().unwrap();

    let first = run_printed_curl(curl);
    let (body, status) = first.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{first}");
    let claims: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(claims["verified"], true);
    assert_eq!(claims["api_key"], "dev-api-key");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    // The demo callback is a Video session event, typed by the server.
    assert_eq!(claims["event"]["family"], "session");
    assert_eq!(claims["event"]["kind"], "connectionCreated");

    let second = run_printed_curl(curl);
    assert!(second.ends_with("\n409"), "{second}");
    assert!(second.contains("replayed_token"), "{second}");
}

#[test]
fn the_printed_sms_curl_is_accepted_once_then_refused_as_a_replay() {
    let (_server, lines) = start(&[]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("SMS: signed requests (sha256)")),
        "{lines:?}"
    );
    let curl = lines
        .iter()
        .find(|l| l.starts_with("curl ") && l.contains("/vonage/sms?"))
        .expect("a demo SMS command");
    let first = run_printed_curl(curl);
    let (body, status) = first.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{first}");
    let sms: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(sms["verified"], true);
    assert_eq!(sms["api_key"], "dev-api-key");
    let second = run_printed_curl(curl);
    assert!(
        second.ends_with("\n409") && second.contains("replayed_token"),
        "{second}"
    );
}

#[test]
fn sms_in_production_needs_the_accounts_method_and_uses_it() {
    use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams};
    let secret = "a-project-signature-secret-from-the-dashboard";
    let env = [
        ("VONAGE_API_KEY", "abcd1234"),
        ("VONAGE_SIGNATURE_SECRET", secret),
        ("REPLAY_STORE", "memory"),
    ];
    // Without the method: no SMS route at all.
    let (_server, lines) = start(&env);
    assert!(!lines.iter().any(|l| l.contains("SMS:")), "{lines:?}");
    drop(_server);

    let (code, out) = run_to_exit(
        "callback_server",
        &[
            env[0],
            env[1],
            env[2],
            ("VONAGE_SMS_SIGNATURE_METHOD", "sha384"),
        ],
    );
    assert_eq!(code.code(), Some(2), "{out}");
    assert!(
        out.contains("VONAGE_SMS_SIGNATURE_METHOD") && !out.contains(secret),
        "{out}"
    );

    let mut with_method = env.to_vec();
    with_method.push(("VONAGE_SMS_SIGNATURE_METHOD", "sha512"));
    let (_server, lines) = start(&with_method);
    assert!(
        !lines.iter().any(|l| l.contains("sig=")),
        "nothing signed is printed: {lines:?}"
    );
    let mut params = SmsParams::from_pairs([
        ("msisdn", "447700900001"),
        ("text", "hi"),
        ("nonce", "n-prod"),
    ]);
    use vonage_secure_callbacks::Clock;
    params.set(
        "timestamp",
        vonage_secure_callbacks::SystemClock.now().to_string(),
    );
    let sig = SignatureMethod::HmacSha512.sign(&params, secret.as_bytes());
    params.set("sig", sig);
    let url = format!("http://{}/vonage/sms", address(&lines));
    let form = params.to_form();
    let post = format!(
        "curl -sS -X POST {url} -H 'Content-Type: application/x-www-form-urlencoded' --data-raw '{form}'"
    );
    let out = run_printed_curl(&post);
    assert!(out.ends_with("\n200"), "{out}");
    assert!(run_printed_curl(&post).ends_with("\n409"));
}

#[test]
fn uses_the_project_credentials_when_given_and_prints_nothing_signed() {
    let secret = "a-project-signature-secret-from-the-dashboard";
    let (_server, lines) = start(&[
        ("VONAGE_API_KEY", "abcd1234"),
        ("VONAGE_SIGNATURE_SECRET", secret),
    ]);
    assert!(!lines.iter().any(|l| l.contains("development")));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(secret) || l.contains("Bearer")),
        "neither the secret nor a token signed with it is printed: {lines:?}"
    );
    // A callback signed with the project's secret, as Vonage would send it.
    let body = r#"{"sessionId":"2_MX4","event":"connectionCreated"}"#;
    let auth = vonage_secure_callbacks::test_util::CallbackSigner::new("abcd1234", secret)
        .authorization(body.as_bytes());
    let curl = format!(
        "curl -sS -X POST http://{}/vonage/session -H 'Authorization: {auth}' --data-raw '{body}'",
        address(&lines)
    );
    let out = run_printed_curl(&curl);
    assert!(out.ends_with("\n200"), "{out}");
    assert!(out.contains("abcd1234"));
    assert!(run_printed_curl(&curl).ends_with("\n409"));
}

#[test]
fn every_example_refuses_half_a_configuration() {
    for example in ["callback_server", "hyper_server", "tower_stack"] {
        for (env, missing) in [
            (("VONAGE_API_KEY", "abcd1234"), "VONAGE_SIGNATURE_SECRET"),
            (
                (
                    "VONAGE_SIGNATURE_SECRET",
                    "a-project-signature-secret-from-the-dashboard",
                ),
                "VONAGE_API_KEY",
            ),
        ] {
            let (status, stderr) = run_to_exit(example, &[env]);
            assert!(!status.success(), "{example} started with only {}", env.0);
            assert!(
                stderr.contains(&format!("{missing} is not set")),
                "{example}: {stderr}"
            );
            assert!(
                !stderr.contains(env.1) || env.0 == "VONAGE_API_KEY",
                "{stderr}"
            );
        }
    }
    // The two that have no development mode refuse to start without credentials at all.
    for example in ["hyper_server", "tower_stack"] {
        let (status, stderr) = run_to_exit(example, &[]);
        assert!(!status.success());
        assert!(stderr.contains("are not set"), "{example}: {stderr}");
    }
}

#[test]
fn a_trickling_body_is_cut_off_by_the_request_timeout() {
    use std::io::{Read, Write};
    let (_server, lines) = start(&[("REQUEST_TIMEOUT_SECS", "1")]);
    let curl = lines.last().unwrap();
    // The demo's valid Authorization header, so that the layer waits for the body.
    let auth = curl
        .split("-H 'Authorization: ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    let mut stream = std::net::TcpStream::connect(address(&lines)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /vonage/session HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ncontent-length: 100\r\n\r\n{{\"se"
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
