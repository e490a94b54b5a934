//! The `vonage-callbacks` command, run as a user runs it: the built binary against a real axum
//! server with the library's layer on loopback, its checklist on tampered and mis-signed
//! callbacks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use axum::routing::post;
use axum::{Extension, Router};
use vonage_secure_callbacks::{Secret, Secrets, SecureCallbackLayer, VonageClaims};

const API_KEY: &str = "47123456";
const SECRET: &str = "cli-test-project-signature-secret-0001";
const OTHER_SECRET: &str = "cli-test-a-rotated-away-old-secret-0002";

/// The command with this test's project in its environment and nothing else Vonage.
fn cli(secret: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vonage-callbacks"));
    cmd.env_remove("VONAGE_SIGNATURE_SECRET_PREVIOUS")
        .env("VONAGE_API_KEY", API_KEY)
        .env("VONAGE_SIGNATURE_SECRET", secret)
        .stdin(Stdio::null());
    cmd
}

/// A server on loopback that answers each accepted callback with its `jti`; it stops when
/// dropped (with its runtime).
struct Server {
    _runtime: tokio::runtime::Runtime,
}

/// Serves `app` on a loopback port from a runtime of its own; the URL of `path` on it.
fn serve(app: Router, path: &str) -> (Server, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await });
    (Server { _runtime: runtime }, url)
}

/// The server with this test's project, and the URL of `path` on it.
fn server(path: &str) -> (Server, String) {
    async fn accepted(Extension(claims): Extension<VonageClaims>) -> String {
        format!(r#"{{"jti":"{}"}}"#, claims.jti())
    }
    let secrets = Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap());
    let app = Router::new()
        .route("/vonage/{*event}", post(accepted))
        .layer(SecureCallbackLayer::new(secrets));
    serve(app, path)
}

/// A server with the SMS layer (sha1) for this test's account, and the URL of `/vonage/sms`.
fn sms_server() -> (Server, String) {
    use vonage_secure_callbacks::sms::{SignatureMethod, SmsVerifier, VerifiedSms};
    async fn accepted(Extension(sms): Extension<VerifiedSms>) -> String {
        format!(r#"{{"nonce":"{}"}}"#, sms.replay_id())
    }
    let secrets = Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap());
    let verifier = SmsVerifier::new(secrets, SignatureMethod::HmacSha1);
    let app = Router::new()
        .route("/vonage/sms", axum::routing::get(accepted))
        .layer(SecureCallbackLayer::sms(verifier));
    serve(app, "/vonage/sms")
}

/// Runs a `curl` command line as printed, and returns its output with the status code last.
fn run_printed_curl(curl: &str) -> String {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("{curl} --max-time 10 -w '\\n%{{http_code}}'"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cmd: &mut Command) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    assert!(
        !text.contains(SECRET) && !text.contains(OTHER_SECRET),
        "{text}"
    );
    (status.code().unwrap(), text)
}

/// A directory of its own under the target directory, emptied.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/samples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

/// The first failed check's line, and the verdict's code.
fn first_failure_and_verdict(out: &str) -> (Option<String>, String) {
    let failed = out
        .lines()
        .find(|l| l.trim_start().starts_with("FAIL"))
        .map(str::to_owned);
    let verdict = out
        .lines()
        .find_map(|l| l.strip_prefix("verdict: "))
        .expect("a verdict line")
        .to_owned();
    // One failed check, and it is the verdict's.
    let failures = out.lines().filter(|l| l.trim_start().starts_with("FAIL"));
    assert!(failures.count() <= 1, "{out}");
    if let (Some(failed), Some(code)) = (&failed, verdict.strip_prefix("refused: ")) {
        let code = code.split(' ').next().unwrap();
        assert!(failed.ends_with(&format!("[{code}]")), "{out}");
    }
    (failed, verdict)
}

#[test]
fn every_sample_event_sent_to_a_server_is_accepted() {
    let (_server, url) = server("/vonage/video");

    let (code, list) = run(cli(SECRET).args(["send", "--list"]));
    assert_eq!(code, 0);
    let events: Vec<&str> = list.lines().collect();
    for family in [
        "session",
        "archive",
        "sip_call",
        "render",
        "broadcast",
        "captions",
    ] {
        assert!(
            events.iter().any(|e| e.starts_with(family)),
            "{family}: {events:?}"
        );
    }
    for event in &events {
        let (code, out) = run(cli(SECRET).args(["send", event, &url]));
        assert_eq!(code, 0, "{event}: {out}");
        assert!(
            out.contains("200 OK") && out.contains("\"jti\""),
            "{event}: {out}"
        );
    }
    // The wrong secret: the server refuses it, and so does the command's exit status.
    let (code, out) = run(cli(OTHER_SECRET).args(["send", "archive_started", &url]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad_signature"), "{out}");
    let (code, out) = run(cli(SECRET).args(["send", "no_such_event", &url]));
    assert_eq!(code, 2, "{out}");
}

#[test]
fn a_signed_body_and_the_printed_curl_command_are_accepted() {
    let (_server, url) = server("/vonage/archive");
    let dir = scratch("cli-sign");
    let body = dir.join("it's a body.json");
    std::fs::write(&body, sample("archive_started")).unwrap();

    // From a file (whose name needs quoting).
    let body_arg = body.to_str().unwrap();
    let (code, curl) = run(cli(SECRET).args(["sign", "--body", body_arg, "--curl", &url]));
    assert_eq!(code, 0, "{curl}");
    let reply = run_printed_curl(curl.trim());
    assert!(reply.ends_with("\n200"), "{reply}");
    // The same command again is a replay, refused.
    assert!(run_printed_curl(curl.trim()).ends_with("\n409"));

    // From standard input, with a quote in the body.
    let mut child = cli(SECRET)
        .args(["sign", "--curl", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"note":"it's signed"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let reply = run_printed_curl(String::from_utf8(out.stdout).unwrap().trim());
    assert!(reply.ends_with("\n200"), "{reply}");

    // The bare token verifies against the body it was made for.
    let (code, token) = run(cli(SECRET).args(["sign", "--body", body_arg]));
    assert_eq!(code, 0);
    let (code, out) = run(cli(SECRET).args(["verify", token.trim(), "--body", body_arg]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verdict: accepted") && !out.contains("FAIL"),
        "{out}"
    );
}

#[test]
fn verify_names_the_failed_check_and_its_cause() {
    let dir = scratch("cli-verify");
    let body = dir.join("body.json");
    std::fs::write(&body, sample("archive_started")).unwrap();
    let body_arg = body.to_str().unwrap();
    let (_, token) = run(cli(SECRET).args(["sign", "--body", body_arg, "--iat", "1800000000"]));
    let header = format!("Authorization: Bearer {}", token.trim());
    let verify = |secret: &str, body: &Path, now: &str| {
        run(cli(secret).args([
            "verify",
            &header,
            "--body",
            body.to_str().unwrap(),
            "--now",
            now,
        ]))
    };
    let at_issue = "1800000060";

    // A tampered body: the payload hash, with both hashes and the body's length.
    let tampered = dir.join("tampered.json");
    let text = String::from_utf8(sample("archive_started")).unwrap();
    std::fs::write(&tampered, text.replace("started", "stopped")).unwrap();
    let (code, out) = verify(SECRET, &tampered, at_issue);
    assert_eq!(code, 1, "{out}");
    let (failed, verdict) = first_failure_and_verdict(&out);
    let failed = failed.unwrap();
    assert!(
        failed.contains("payload_hash") && failed.contains("body bytes hash to"),
        "{out}"
    );
    assert!(out.contains("ok    signature"), "{out}");
    assert!(
        verdict.starts_with("refused: payload_hash_mismatch"),
        "{out}"
    );

    // The same body with a line ending added: the hint says so.
    let with_newline = dir.join("newline.json");
    std::fs::write(&with_newline, format!("{text}\n")).unwrap();
    let (_, out) = verify(SECRET, &with_newline, at_issue);
    assert!(out.contains("without its final newline matches"), "{out}");

    // Gzip on the way.
    let gzipped = dir.join("body.json.gz");
    std::fs::write(&gzipped, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    let (_, out) = verify(SECRET, &gzipped, at_issue);
    assert!(out.contains("gzip-compressed"), "{out}");

    // The wrong secret: the signature, how many secrets were tried.
    let (code, out) = verify(OTHER_SECRET, &body, at_issue);
    assert_eq!(code, 1, "{out}");
    let (failed, verdict) = first_failure_and_verdict(&out);
    assert!(failed.unwrap().contains("none of the 1 secret(s)"), "{out}");
    // As in the layer, nothing after a bad signature is checked.
    assert!(
        out.contains("--    payload_hash: not checked (an earlier check failed)"),
        "{out}"
    );
    assert!(verdict.starts_with("refused: bad_signature"), "{out}");

    // During a rotation both secrets are tried, and the one that verified is named.
    let (code, out) = run(cli(OTHER_SECRET)
        .env("VONAGE_SIGNATURE_SECRET_PREVIOUS", SECRET)
        .args(["verify", &header, "--body", body_arg, "--now", at_issue]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("2 secret(s)") && out.contains("secret previous"),
        "{out}"
    );

    // Time: the offset, both ways, and the library agrees with the checklist each time.
    for (now, code, reason, offset) in [
        ("1800090000", 1, "stale_token", "issued 90000 s before now"),
        (
            "1799999000",
            1,
            "token_from_future",
            "issued -1000 s before now",
        ),
        (at_issue, 0, "", "issued 60 s before now"),
    ] {
        let (got, out) = verify(SECRET, &body, now);
        assert_eq!(got, code, "{out}");
        assert!(out.contains(offset), "{out}");
        let (_, verdict) = first_failure_and_verdict(&out);
        assert!(verdict.contains(reason), "{out}");
    }

    // Another project's key, and something that is not a token.
    let (code, out) = run(cli(SECRET).args([
        "verify",
        &header,
        "--body",
        body_arg,
        "--now",
        at_issue,
        "--api-key",
        "9999",
    ]));
    assert_eq!(code, 1);
    let (failed, verdict) = first_failure_and_verdict(&out);
    assert!(
        failed.unwrap().contains(r#"(configured: ["9999"])"#),
        "{out}"
    );
    assert!(verdict.starts_with("refused: unknown_api_key"), "{out}");
    let (code, out) = run(cli(SECRET).args(["verify", "Bearer not-a-jwt", "--body", body_arg]));
    assert_eq!(code, 1);
    assert!(first_failure_and_verdict(&out)
        .1
        .starts_with("refused: malformed_token"));
}

#[test]
fn secrets_come_from_the_environment_or_a_file_never_the_command_line() {
    let (code, out) = run(cli(SECRET).args(["sign", "--secret", SECRET]));
    assert_eq!(code, 2, "{out}");
    let (code, out) = run(cli(SECRET)
        .env_remove("VONAGE_SIGNATURE_SECRET")
        .args(["sign"]));
    assert_eq!(code, 2);
    assert!(
        out.contains("VONAGE_SIGNATURE_SECRET or give --secret-file"),
        "{out}"
    );

    let dir = scratch("cli-secret-file");
    let (secret_file, body) = (dir.join("2026-11"), dir.join("body.json"));
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    std::fs::write(&body, b"{}").unwrap();
    let files = [
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--body",
        body.to_str().unwrap(),
    ];
    let mut sign = cli(OTHER_SECRET);
    sign.env_remove("VONAGE_API_KEY")
        .args(["sign", "--api-key", API_KEY])
        .args(files);
    let (code, token) = run(&mut sign);
    assert_eq!(code, 0, "{token}");
    let (code, out) = run(cli(OTHER_SECRET).args(["verify", token.trim()]).args(files));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified by secret 2026-11"), "{out}");
}

/// Where the old checklist and the library disagreed: an upper-case `payload_hash` (accepted),
/// an empty `jti` (accepted), `exp` and `nbf` (honoured). The checklist is now the library's
/// report, so each line agrees with the verdict.
#[test]
fn the_checklist_never_contradicts_the_verdict() {
    use serde_json::{json, Map, Value};
    use vonage_secure_callbacks::test_util::CallbackSigner;

    const NOW: u64 = 1_800_000_000;
    type Edit = fn(&mut Map<String, Value>);
    let cases: [(&str, Edit, &str, Option<&str>); 4] = [
        (
            "upper-case payload_hash",
            |c| {
                let upper = c["payload_hash"].as_str().unwrap().to_uppercase();
                c.insert("payload_hash".into(), json!(upper));
            },
            "accepted",
            None,
        ),
        (
            "empty jti",
            |c| {
                c.insert("jti".into(), json!(""));
            },
            "accepted",
            None,
        ),
        (
            "exp an hour ago",
            |c| {
                c.insert("exp".into(), json!(NOW - 3600));
            },
            "refused: stale_token",
            Some("time"),
        ),
        (
            "nbf an hour ahead",
            |c| {
                c.insert("nbf".into(), json!(NOW + 3600));
            },
            "refused: token_from_future",
            Some("time"),
        ),
    ];
    let dir = scratch("cli-agree");
    let body = dir.join("body.json");
    std::fs::write(&body, br#"{"event":"archive"}"#).unwrap();
    let signer = CallbackSigner::new(API_KEY, SECRET);
    for (case, edit, expected, failed_check) in cases {
        let token = signer.token_with(br#"{"event":"archive"}"#, |c| {
            c.insert("iat".into(), json!(NOW));
            edit(c);
        });
        let (code, out) = run(cli(SECRET).args([
            "verify",
            &token,
            "--body",
            body.to_str().unwrap(),
            "--now",
            &NOW.to_string(),
        ]));
        let (failed, verdict) = first_failure_and_verdict(&out);
        assert!(verdict.starts_with(expected), "{case}: {out}");
        assert_eq!(code, i32::from(failed_check.is_some()), "{case}: {out}");
        match failed_check {
            None => assert!(failed.is_none(), "{case}: {out}"),
            Some(check) => assert!(
                failed.unwrap().contains(&format!("FAIL  {check}:")),
                "{case}: {out}"
            ),
        }
    }
}

mod sms {
    use super::*;
    use serde::Deserialize;
    use vonage_secure_callbacks::dangerous::short_secret;
    use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier};
    use vonage_secure_callbacks::{FixedClock, Secrets};

    #[derive(Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        method: String,
        params: serde_json::Map<String, serde_json::Value>,
        secret: String,
        sig: String,
    }

    /// The SMS vectors shared with the library's tests.
    fn vectors() -> Vec<Vector> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/sms_signature_vectors.json"
        );
        serde_json::from_str::<Vectors>(&std::fs::read_to_string(path).unwrap())
            .unwrap()
            .vectors
    }

    /// The command's verdict line and exit code for a request given by `how` (`--query`,
    /// `--form` or `--json`) and `what` (the query, or a file).
    fn verify_sms(
        dir: &Path,
        secret: &str,
        method: &str,
        now: u64,
        how: &str,
        what: &str,
    ) -> (i32, String) {
        let secret_file = dir.join("secret");
        std::fs::write(&secret_file, secret).unwrap();
        let mut cmd = cli(SECRET);
        cmd.env_remove("VONAGE_API_KEY").args([
            "verify-sms",
            "--method",
            method,
            how,
            what,
            "--now",
            &now.to_string(),
            "--api-key",
            "vectors",
            "--allow-short-secret",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ]);
        let (code, out) = run(&mut cmd);
        let verdict = out
            .lines()
            .find_map(|l| l.strip_prefix("verdict: "))
            .unwrap()
            .to_owned();
        (code, format!("{verdict}\n{out}"))
    }

    /// The library's verdict on the same request, as the command prints it.
    fn library(secret: &str, method: SignatureMethod, now: u64, params: &SmsParams) -> bool {
        let secrets = Secrets::new().project("vectors", short_secret(secret).unwrap());
        SmsVerifier::new(secrets, method)
            .clock(FixedClock::new(now))
            .verify_params(params)
            .is_ok()
    }

    #[test]
    fn every_vector_by_query_form_and_json_and_the_library_agrees() {
        let dir = scratch("cli-sms-vectors");
        for v in vectors() {
            let mut params = SmsParams::from_pairs(
                v.params
                    .iter()
                    .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_owned())),
            );
            params.set("sig", v.sig.clone());
            let now: u64 = params.get("timestamp").unwrap().parse().unwrap();
            let method: SignatureMethod = v.method.parse().unwrap();
            let form = dir.join("form");
            std::fs::write(&form, params.to_form()).unwrap();
            let json = dir.join("json");
            let object: serde_json::Map<String, serde_json::Value> = params
                .iter()
                .map(|(n, x)| (n.to_owned(), x.into()))
                .collect();
            std::fs::write(&json, serde_json::Value::Object(object).to_string()).unwrap();
            for (how, what) in [
                ("--query", params.to_form()),
                ("--form", form.to_str().unwrap().to_owned()),
                ("--json", json.to_str().unwrap().to_owned()),
            ] {
                let (code, out) = verify_sms(&dir, &v.secret, &v.method, now, how, &what);
                assert_eq!(code, 0, "{} {how}: {out}", v.name);
                assert!(out.starts_with("accepted"), "{} {how}: {out}", v.name);
            }
            assert!(library(&v.secret, method, now, &params));

            // Tampered, another method, too late: the command and the library refuse alike.
            let mut tampered = params.clone();
            tampered.set("timestamp", (now + 1).to_string());
            let other = SignatureMethod::ALL
                .into_iter()
                .find(|m| *m != method)
                .unwrap();
            for (params, method, at, code) in [
                (&tampered, method, now, "bad_signature"),
                (&params, other, now, "bad_signature"),
                (&params, method, now + 4 * 24 * 3600, "stale_token"),
            ] {
                let (exit, out) = verify_sms(
                    &dir,
                    &v.secret,
                    method.name(),
                    at,
                    "--query",
                    &params.to_form(),
                );
                assert_eq!(exit, 1, "{}: {out}", v.name);
                assert!(
                    out.starts_with(&format!("refused: {code}")),
                    "{}: {out}",
                    v.name
                );
                assert!(!library(&v.secret, method, at, params), "{}", v.name);
                assert!(
                    out.contains("FAIL  ") && out.contains(&format!("[{code}]")),
                    "{out}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_method_and_a_tampered_sms_are_explained() {
        let dir = scratch("cli-sms-explain");
        let (_, signed) = run(cli(SECRET).args([
            "sign-sms",
            "--method",
            "sha256",
            "--query",
            "msisdn=447700900001&to=447700900000&text=Hi+there&nonce=n-1",
        ]));
        let signed = signed.trim().to_owned();
        let secret_file = dir.join("secret");
        std::fs::write(&secret_file, SECRET).unwrap();
        let check = |method: &str, query: &str| {
            run(cli(SECRET).args(["verify-sms", "--method", method, "--query", query]))
        };
        let (code, out) = check("sha256", &signed);
        assert_eq!(code, 0, "{out}");
        let (code, out) = check("sha512", &signed);
        assert_eq!(code, 1);
        assert!(out.contains("FAIL  signature: sha512"), "{out}");
        assert!(
            out.contains("this sig was made with sha256, not sha512: give --method sha256"),
            "{out}"
        );
        // A tampered parameter: the method was right, so no hint names it.
        let (code, out) = check("sha256", &signed.replace("Hi", "Ho"));
        assert_eq!(code, 1);
        assert!(
            out.contains("[bad_signature]") && out.contains("decodes to a space"),
            "{out}"
        );
        assert!(
            !out.contains("was made with") && !out.contains("--method"),
            "{out}"
        );
        let (code, out) = check("sha256", &format!("{signed}&to=1"));
        assert_eq!(code, 1);
        assert!(
            out.contains("FAIL  parameters: parameter \"to\" is given twice"),
            "{out}"
        );
    }

    #[test]
    fn a_signed_sms_curl_is_accepted_by_a_server_once() {
        let (_server, url) = sms_server();
        let (code, curl) = run(cli(SECRET).args([
            "sign-sms",
            "--method",
            "sha1",
            "--query",
            "msisdn=447700900001&to=447700900000&text=Hello&nonce=n-curl",
            "--curl",
            &url,
        ]));
        assert_eq!(code, 0, "{curl}");
        let reply = run_printed_curl(curl.trim());
        assert!(reply.ends_with("\n200"), "{reply}");
        assert!(run_printed_curl(curl.trim()).ends_with("\n409"));
    }
}

/// One rule for short secrets in every verb: refused, naming the way out for the command line,
/// unless `--allow-short-secret` (or its variable) says otherwise.
#[test]
fn every_verb_holds_secrets_to_one_rule_and_names_the_flag() {
    let dir = scratch("cli-short-secret");
    let body = dir.join("body.json");
    std::fs::write(&body, b"{}").unwrap();
    let short = || {
        let mut cmd = cli("five5");
        cmd.env_remove("VONAGE_ALLOW_SHORT_SECRET");
        cmd
    };
    let sign = || {
        let mut cmd = short();
        cmd.args(["sign", "--body"]).arg(&body);
        cmd
    };
    let sign_sms = || {
        let mut cmd = short();
        cmd.args(["sign-sms", "--method", "sha256", "--query", "a=1"]);
        cmd
    };
    let proxy = || {
        let mut cmd = short();
        cmd.args(["proxy", "--upstream", "http://127.0.0.1:1"])
            .args(["--replay-store", "memory"]);
        cmd
    };
    for (verb, mut cmd) in [
        ("sign", sign()),
        ("sign-sms", sign_sms()),
        ("proxy", proxy()),
    ] {
        let (code, out) = run(&mut cmd);
        assert_eq!(code, 2, "{verb}: {out}");
        assert!(
            out.contains("VONAGE_SIGNATURE_SECRET: the signature secret is 5 bytes")
                && out.contains("--allow-short-secret"),
            "{verb}: {out}"
        );
    }
    // With the flag, or its variable, a short secret signs and verifies.
    let (code, token) = run(short()
        .args(["sign", "--allow-short-secret", "--body"])
        .arg(&body));
    assert_eq!(code, 0, "{token}");
    let (code, out) = run(short()
        .env("VONAGE_ALLOW_SHORT_SECRET", "true")
        .args(["verify", token.trim(), "--body"])
        .arg(&body));
    assert_eq!(code, 0, "{out}");
}
