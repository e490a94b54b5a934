//! The SMS `sig` suite: the same idea as [`jwt_attacks`](super::jwt_attacks), for the SMS
//! API's signed requests.

use http::header::CONTENT_TYPE;
use http::Method;
use serde_json::{Map, Value};

use super::attacks::{Attack, Expected};
use super::signer::fresh_jti;
use crate::clock::{Clock, SystemClock};
use crate::rejection::Rejection;
use crate::sms::{SignatureMethod, SmsParams};
use crate::verify::DEFAULT_BODY_LIMIT;

const FORM: &str = "application/x-www-form-urlencoded";

/// The SMS suite for an endpoint at `path` that verifies account `api_key`'s `secret` by
/// `method` with the defaults (72 h age, 5 min skew, 1 MiB body): parameters as a query, a
/// form and a JSON body; no or a wrong `sig` (another secret, another method: a downgrade),
/// each parameter changed, added or dropped after signing, a stale or future `timestamp`,
/// parameters given twice or in two places, a body over the limit, replays by `nonce` and by
/// `sig`; and the genuine variants the verifier must still accept.
///
/// ```
/// use vonage_secure_callbacks::sms::SignatureMethod;
/// use vonage_secure_callbacks::test_util::sms_attacks;
///
/// let secret = "a-signature-secret-of-32-bytes-or-more";
/// let suite = sms_attacks("a1b2c3d", secret, SignatureMethod::HmacSha256, "/vonage/sms");
/// assert!(suite.len() > 30);
/// ```
pub fn sms_attacks(
    api_key: &str,
    secret: &str,
    method: SignatureMethod,
    path: &str,
) -> Vec<Attack> {
    let now = SystemClock.now();
    let secret = secret.as_bytes();
    // An inbound message as Vonage sends it, unsigned.
    let inbound = |timestamp: u64| {
        SmsParams::from_pairs([
            ("api-key", api_key.to_owned()),
            ("msisdn", "447700900001".to_owned()),
            ("to", "447700900000".to_owned()),
            ("messageId", "0A0000000123ABCD1".to_owned()),
            ("text", "Hello & welcome = yes".to_owned()),
            ("type", "text".to_owned()),
            ("keyword", "HELLO".to_owned()),
            ("message-timestamp", "2026-12-02 05:00:00".to_owned()),
            ("timestamp", timestamp.to_string()),
            ("nonce", fresh_jti()),
        ])
    };
    let signed_with = |mut params: SmsParams, method: SignatureMethod, secret: &[u8]| {
        params.set("sig", method.sign(&params, secret));
        params
    };
    let signed = |params: SmsParams| signed_with(params, method, secret);
    let get = |name: &str, params: &SmsParams| {
        Attack::new(name, Method::GET, format!("{path}?{}", params.to_form()))
    };
    let form = |name: &str, body: String| {
        Attack::new(name, Method::POST, path.to_owned())
            .header(CONTENT_TYPE, FORM)
            .body(body)
    };
    let json = |name: &str, body: String| {
        Attack::new(name, Method::POST, path.to_owned())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    };
    let as_json = |params: &SmsParams| {
        let object: Map<String, Value> = params
            .iter()
            .map(|(n, v)| (n.to_owned(), Value::String(v.to_owned())))
            .collect();
        Value::Object(object).to_string()
    };
    let refused = Expected::Refused;
    let mut suite = Vec::new();

    // Genuine, in each of the three ways an account can have them sent.
    suite.push(get("genuine GET", &signed(inbound(now))));
    suite.push(form("genuine POST form", signed(inbound(now)).to_form()));
    suite.push(json("genuine POST JSON", as_json(&signed(inbound(now)))));
    let mut upper = signed(inbound(now));
    let sig = upper.get("sig").unwrap_or_default().to_ascii_uppercase();
    upper.set("sig", sig);
    suite.push(get("sig in upper case", &upper));
    suite.push(get(
        "timestamp 71 hours ago",
        &signed(inbound(now - 71 * 3600)),
    ));

    // The signature.
    let mut unsigned = inbound(now);
    suite.push(get("no sig", &unsigned).expect(refused(Rejection::MissingSignature)));
    unsigned.set("sig", "");
    suite.push(get("empty sig", &unsigned).expect(refused(Rejection::BadSignature)));
    let other_secret = b"an-attacker-secret-that-is-long-enough";
    suite.push(
        get(
            "signed with another secret",
            &signed_with(inbound(now), method, other_secret),
        )
        .expect(refused(Rejection::BadSignature)),
    );
    for other in SignatureMethod::ALL.into_iter().filter(|m| *m != method) {
        suite.push(
            get(
                &format!("signed by {other} instead (a downgrade)"),
                &signed_with(inbound(now), other, secret),
            )
            .expect(refused(Rejection::BadSignature)),
        );
    }
    let genuine = signed(inbound(now));
    let sig = genuine.get("sig").unwrap_or_default().to_owned();
    for (name, forged) in [
        ("sig truncated", sig[..sig.len() - 2].to_owned()),
        ("sig with a byte added", format!("{sig}00")),
        ("sig not hex", "zz".repeat(sig.len() / 2)),
        ("sig with one digit changed", flip_first(&sig)),
    ] {
        let mut params = genuine.clone();
        params.set("sig", forged);
        suite.push(get(name, &params).expect(refused(Rejection::BadSignature)));
    }

    // Each parameter changed, one added, one dropped, after signing.
    for (name, value) in genuine
        .iter()
        .filter(|(n, _)| *n != "sig" && *n != "api-key")
    {
        let mut params = genuine.clone();
        params.set(name, format!("{value}0"));
        suite.push(
            get(&format!("{name} changed after signing"), &params)
                .expect(refused(Rejection::BadSignature)),
        );
    }
    let mut added = genuine.clone();
    added.set("concat", "true");
    suite.push(
        get("a parameter added after signing", &added).expect(refused(Rejection::BadSignature)),
    );
    let dropped = SmsParams::from_pairs(genuine.iter().filter(|(n, _)| *n != "keyword"));
    suite.push(
        get("a parameter dropped after signing", &dropped).expect(refused(Rejection::BadSignature)),
    );
    // The scheme's own blind spot: `&` and `=` in a value are signed as `_`, so a value changed
    // between those three characters keeps its signature. TLS, not the signature, protects it.
    let mut blind = signed(inbound(now));
    blind.set("text", "Hello _ welcome _ yes");
    suite.push(get("& and = in a value turned to _ (signed alike)", &blind));

    // The account.
    let mut stranger = inbound(now);
    stranger.set("api-key", "someone-else");
    suite.push(get("unknown api-key", &signed(stranger)).expect(refused(Rejection::UnknownApiKey)));

    // Time.
    for (name, timestamp, rejection) in [
        (
            "timestamp 73 hours ago",
            now - 73 * 3600,
            Rejection::StaleToken,
        ),
        (
            "timestamp an hour ahead",
            now + 3600,
            Rejection::TokenFromFuture,
        ),
    ] {
        suite.push(get(name, &signed(inbound(timestamp))).expect(refused(rejection)));
    }
    let no_time = SmsParams::from_pairs(inbound(now).iter().filter(|(n, _)| *n != "timestamp"));
    suite.push(get("no timestamp", &signed(no_time)).expect(refused(Rejection::MissingTimestamp)));
    let mut words = inbound(now);
    words.set("timestamp", "yesterday");
    suite.push(
        get("timestamp not a number", &signed(words)).expect(refused(Rejection::MissingTimestamp)),
    );

    // Shapes that must be refused rather than guessed.
    let malformed = refused(Rejection::MalformedParameters);
    let query = signed(inbound(now)).to_form();
    suite.push(
        get("a parameter given twice", &signed(inbound(now)))
            .expect(malformed)
            .append_to_uri("&text=other"),
    );
    suite.push(
        form(
            "parameters in the query and the body",
            signed(inbound(now)).to_form(),
        )
        .append_to_uri(&format!("?{query}"))
        .expect(malformed),
    );
    suite.push(
        json(
            "JSON with a nested value",
            r#"{"text":{"a":1},"sig":"00"}"#.into(),
        )
        .expect(malformed),
    );
    suite.push(json("JSON that is an array", r#"[["text","hi"]]"#.into()).expect(malformed));
    suite.push(
        json(
            "JSON with a boolean",
            r#"{"concat":true,"sig":"00"}"#.into(),
        )
        .expect(malformed),
    );
    suite.push(form("bad percent-encoding", "text=%zz&sig=00".into()).expect(malformed));
    let mut big = inbound(now);
    big.set("text", "x".repeat(DEFAULT_BODY_LIMIT));
    suite.push(
        form("body over 1 MiB", signed(big).to_form()).expect(refused(Rejection::BodyTooLarge)),
    );

    // Replays: by nonce (in any transport), and by sig where no nonce is sent.
    let delivered = signed(inbound(now));
    suite.push(get("delivered once", &delivered));
    suite.push(get("replayed as captured", &delivered).expect(refused(Rejection::ReplayedToken)));
    suite.push(
        form("replayed as a form body", delivered.to_form())
            .expect(refused(Rejection::ReplayedToken)),
    );
    let no_nonce = signed(SmsParams::from_pairs(
        inbound(now).iter().filter(|(n, _)| *n != "nonce"),
    ));
    suite.push(get("delivered once without a nonce", &no_nonce));
    suite
        .push(get("replayed without a nonce", &no_nonce).expect(refused(Rejection::ReplayedToken)));
    let mut flipped = no_nonce.clone();
    let sig = flipped.get("sig").unwrap_or_default().to_ascii_uppercase();
    flipped.set("sig", sig);
    suite.push(
        get("replayed without a nonce, sig in upper case", &flipped)
            .expect(refused(Rejection::ReplayedToken)),
    );
    suite
}

/// `sig` with its first character changed to another hex digit.
fn flip_first(sig: &str) -> String {
    let mut bytes = sig.as_bytes().to_vec();
    if let Some(b) = bytes.first_mut() {
        *b = match *b {
            b'0' => b'1',
            b'1'..=b'9' => b'0',
            b'a' => b'b',
            _ => b'a',
        };
    }
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_character_always_changes() {
        for sig in ["0abc", "9abc", "abcd", "fabc", ""] {
            assert!(sig.is_empty() || flip_first(sig) != sig, "{sig}");
        }
    }
}
