//! The fuzz targets' checks (`fuzz/src/lib.rs`) on their seed corpus and on every input saved
//! under `fuzz/regressions/<target>/` (crashes once found, kept fixed), in the normal test run.
//!
//! With `WRITE_FUZZ_SEEDS=<dir>` set, the seeds are also written to `<dir>/<target>/`, to start
//! a fuzzing run from valid callbacks (see `fuzz/README.md`).

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

use std::path::Path;

use checks::{service_input, API_KEY, BODY, NOW, SECRET};
use serde::Deserialize;
use vonage_secure_callbacks::test_util::CallbackSigner;

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    token: String,
    body: Option<String>,
}

/// Seeds per target: the public vectors and the signing helper's valid callbacks.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let vectors: Vectors =
        serde_json::from_str(include_str!("../fixtures/vonage_vectors.json")).unwrap();
    let signer = CallbackSigner::new(API_KEY, SECRET);
    let valid = |body: &[u8]| {
        signer.token_with(body, |c| {
            c.insert("iat".into(), NOW.into());
        })
    };
    let mut out = Vec::new();
    for v in &vectors.vectors {
        out.push(("authorization", format!("Bearer {}", v.token).into_bytes()));
        let body = v.body.clone().unwrap_or_default();
        let auth = format!("Bearer {}", v.token);
        out.push((
            "service",
            service_input(1, auth.as_bytes(), 0, body.as_bytes()),
        ));
    }
    for body in [BODY, b"", &[b'x'; 1024][..], &[b'x'; 1025][..]] {
        let auth = format!("Bearer {}", valid(body));
        out.push(("authorization", auth.clone().into_bytes()));
        for flags in [1, 3, 5, 7] {
            let declared = body.len() as u32;
            out.push((
                "service",
                service_input(flags, auth.as_bytes(), declared, body),
            ));
        }
        let token = valid(body);
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        out.push(("claims", claims));
    }
    out.push((
        "claims",
        br#"{"iat":1800000000,"jti":"a\"b","api_key":"a1b2c3d4","iss":"Vonage"}"#.to_vec(),
    ));
    // SMS: the shared vectors, signed again with the fuzz secret, as forms and as JSON.
    for (_, method, params, _, _) in crate::sms_vectors::vectors() {
        use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams};
        let mut params = SmsParams::from_pairs(params.iter().filter(|(n, _)| *n != "sig"));
        params.set("timestamp", NOW.to_string());
        let sig = method.sign(&params, SECRET.as_bytes());
        params.set("sig", sig);
        let selector = SignatureMethod::ALL
            .iter()
            .position(|m| *m == method)
            .unwrap() as u8;
        let mut form = vec![selector];
        form.extend_from_slice(params.to_form().as_bytes());
        out.push(("sms", form));
        let object: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(n, v)| (n.to_owned(), serde_json::Value::from(v)))
            .collect();
        // The high bit picks JSON; the byte modulo 5 still picks the method.
        let mut json = vec![0x80 + (selector + 2) % 5];
        json.extend_from_slice(serde_json::Value::Object(object).to_string().as_bytes());
        out.push(("sms", json));
    }
    out
}

fn run(target: &str, data: &[u8]) {
    match target {
        "authorization" => checks::authorization(data),
        "claims" => checks::claims(data),
        "service" => {
            checks::service(data);
        }
        "sms" => {
            checks::sms(data);
        }
        other => panic!("no target {other}"),
    }
}

#[test]
fn seeds_hold_the_invariants() {
    let seeds = seeds();
    for (target, data) in &seeds {
        run(target, data);
    }
    if let Ok(dir) = std::env::var("WRITE_FUZZ_SEEDS") {
        for (i, (target, data)) in seeds.iter().enumerate() {
            let dir = Path::new(&dir).join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{i:03}")), data).unwrap();
        }
    }
}

#[test]
fn saved_regressions_hold_the_invariants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for target in ["authorization", "claims", "service", "sms"] {
        // Missing or empty would make this test pass on nothing.
        let dir = root.join(target);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(!entries.is_empty(), "no saved inputs in {}", dir.display());
        for path in entries {
            run(target, &std::fs::read(&path).unwrap());
        }
    }
}

/// The SMS seeds are valid: the fuzzer starts from requests that verify, by form and JSON.
#[test]
fn the_sms_seeds_verify() {
    let sms: Vec<_> = seeds().into_iter().filter(|(t, _)| *t == "sms").collect();
    assert_eq!(sms.len(), 28);
    for (_, data) in sms {
        assert!(checks::sms(&data), "{}", String::from_utf8_lossy(&data));
    }
}

/// Valid seeds really reach the inner service (else the fuzzer would start from nothing), and
/// sent twice, the second is refused.
#[test]
fn a_valid_seed_reaches_the_inner_service() {
    let signer = CallbackSigner::new(API_KEY, SECRET);
    let auth = format!(
        "Bearer {}",
        signer.token_with(BODY, |c| {
            c.insert("iat".into(), NOW.into());
        })
    );
    let declared = BODY.len() as u32;
    assert!(checks::service(&service_input(
        1,
        auth.as_bytes(),
        declared,
        BODY
    )));
    assert!(checks::service(&service_input(
        7,
        auth.as_bytes(),
        declared,
        BODY
    )));
    assert!(!checks::service(&service_input(
        0,
        auth.as_bytes(),
        declared,
        BODY
    )));
}
