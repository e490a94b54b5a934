//! The README's main job, as a newcomer runs it: start `examples/callback_server`, run the `curl`
//! command it prints, exactly as printed, and get the verified claims back.

mod common;

use common::example::{run_printed_curl, start};

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
fn uses_the_project_credentials_when_given() {
    let secret = "a-project-signature-secret-from-the-dashboard";
    let (_server, lines) = start(&[
        ("VONAGE_API_KEY", "abcd1234"),
        ("VONAGE_SIGNATURE_SECRET", secret),
    ]);
    assert!(!lines.iter().any(|l| l.contains("development secret")));
    assert!(
        !lines.iter().any(|l| l.contains(secret)),
        "the secret is never printed"
    );
    let out = run_printed_curl(lines.last().unwrap());
    assert!(out.ends_with("\n200"), "{out}");
    assert!(out.contains("abcd1234"));
}
