//! Properties of verification over generated callbacks (proptest).

use proptest::prelude::*;
use serde_json::json;
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{CallbackVerifier, FixedClock, Secret, Secrets};

const API_KEY: &str = "a1b2c3d4";
const SECRET: &str = "property-test-secret-property-test-01";
const NOW: u64 = 1_800_000_000;

fn verifier() -> CallbackVerifier {
    CallbackVerifier::new(Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap()))
        .clock(FixedClock::new(NOW))
}

fn sign(body: &[u8]) -> String {
    CallbackSigner::new(API_KEY, SECRET).token_with(body, |c| {
        c.insert("iat".into(), NOW.into());
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_byte_change_to_the_token_is_rejected(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        position in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let token = sign(&body);
        let v = verifier();
        prop_assert!(v.verify_token(&token, &body).is_ok());
        let mut bytes = token.clone().into_bytes();
        let i = position.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        // Not UTF-8 any more: it could not even be a header value's text.
        if let Ok(changed) = String::from_utf8(bytes) {
            prop_assert!(v.verify_token(&changed, &body).is_err(), "accepted {changed}");
        }
    }

    #[test]
    fn any_single_byte_change_insertion_or_deletion_in_the_body_is_rejected(
        body in proptest::collection::vec(any::<u8>(), 1..2048),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        edit in 0..3u8,
    ) {
        let token = sign(&body);
        let v = verifier();
        prop_assert!(v.verify_token(&token, &body).is_ok());
        let mut changed = body.clone();
        let i = position.index(body.len());
        match edit {
            0 => {
                prop_assume!(changed[i] != byte);
                changed[i] = byte;
            }
            1 => changed.insert(i, byte),
            _ => {
                changed.remove(i);
            }
        }
        prop_assert_eq!(
            v.verify_token(&token, &changed).unwrap_err().code(),
            "payload_hash_mismatch"
        );
    }

    #[test]
    fn re_serialised_json_is_rejected(
        fields in proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,16}", 2..8),
        pretty in any::<bool>(),
    ) {
        // The body as sent, with keys in one order and no spaces...
        let sent: String = {
            let parts: Vec<String> = fields
                .iter()
                .rev()
                .map(|(k, v)| format!("{}:{}", json!(k), json!(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        };
        let token = sign(sent.as_bytes());
        let v = verifier();
        prop_assert!(v.verify_token(&token, sent.as_bytes()).is_ok());
        // ...and the same JSON value serialised again (sorted keys, maybe pretty).
        let value: serde_json::Value = serde_json::from_str(&sent).unwrap();
        let again = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        prop_assume!(again != sent);
        prop_assert_eq!(
            v.verify_token(&token, again.as_bytes()).unwrap_err().code(),
            "payload_hash_mismatch"
        );
    }

    #[test]
    fn the_signers_output_always_verifies(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        api_key in "[a-zA-Z0-9]{1,16}",
        secret in "[ -~]{32,80}",
    ) {
        let signer = CallbackSigner::new(api_key.clone(), &secret);
        let v = CallbackVerifier::new(
            Secrets::new().project(api_key.clone(), Secret::new(&secret).unwrap()),
        );
        let claims = v.verify_authorization(&signer.authorization(&body), &body).unwrap();
        prop_assert_eq!(claims.api_key(), api_key.as_str());
    }
}
