//! What bytes a callback's `payload_hash` signs, and how the claim is compared with them: the
//! body's SHA-256 in hex; for a GET webhook without a body (Voice's `answer_url`), the query
//! parameters written as a compact JSON object.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Lowercase hex SHA-256 of `body`: the `payload_hash` claim Vonage sends for it.
///
/// ```
/// use vonage_secure_callbacks::payload_hash;
/// assert_eq!(
///     payload_hash(b""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn payload_hash(body: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(body))
}

/// True when `claimed` (64 hex digits, either case: SDKs write both) is the SHA-256 of
/// `payload`, compared in constant time. Also returns the digest, for the refusal's facts.
pub(crate) fn matches(claimed: &str, payload: &[u8]) -> (bool, [u8; 32]) {
    let actual: [u8; 32] = Sha256::digest(payload).into();
    let equal = decode_hex_32(claimed).is_some_and(|claimed| bool::from(actual.ct_eq(&claimed)));
    (equal, actual)
}

/// Decodes exactly 64 hex digits of either case.
fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (crate::hex::decode_into(hex, &mut out)? == 32).then_some(out)
}

/// The bytes Vonage hashes into `payload_hash` for a GET webhook: the query parameters, decoded,
/// in their original order, as a compact JSON object of strings.
///
/// ```
/// use vonage_secure_callbacks::query_payload;
/// assert_eq!(
///     query_payload("to=447700900000&from=447700900001&uuid=aaaa-bbbb"),
///     r#"{"to":"447700900000","from":"447700900001","uuid":"aaaa-bbbb"}"#
/// );
/// assert_eq!(query_payload("name=J%C3%BCrgen+S"), r#"{"name":"Jürgen S"}"#);
/// assert_eq!(query_payload(""), "{}");
/// ```
///
/// A key that appears twice appears twice in the object, in place, as it did in the query.
pub fn query_payload(query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 16);
    out.push('{');
    for (i, (key, value)) in form_urlencoded::parse(query.as_bytes()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, &key);
        out.push(':');
        push_json_string(&mut out, &value);
    }
    out.push('}');
    out
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's string escaping is JSON.stringify's for every string a query can carry.
    out.push_str(&serde_json::Value::from(s).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex_32(&"0f".repeat(32)), Some([15; 32]));
        assert_eq!(decode_hex_32(&"0F".repeat(32)), Some([15; 32]));
        assert_eq!(decode_hex_32(&"0g".repeat(32)), None);
        assert_eq!(decode_hex_32(&"0f".repeat(31)), None);
        assert_eq!(decode_hex_32("é"), None);
    }

    #[test]
    fn either_case_matches_and_the_digest_comes_back() {
        let lower = payload_hash(b"abc");
        assert!(matches(&lower, b"abc").0);
        assert!(matches(&lower.to_uppercase(), b"abc").0);
        assert!(!matches(&lower, b"abd").0);
        assert!(!matches("not hex", b"abc").0);
        assert_eq!(crate::hex::encode(&matches("", b"abc").1), lower);
    }

    #[test]
    fn escapes_like_json_stringify() {
        assert_eq!(query_payload("q=a%22b%5Cc%0A"), r#"{"q":"a\"b\\c\n"}"#);
        assert_eq!(
            query_payload("url=https%3A%2F%2Fx.io%2Fa"),
            r#"{"url":"https://x.io/a"}"#
        );
        assert_eq!(query_payload("a=1&a=2"), r#"{"a":"1","a":"2"}"#);
        assert_eq!(query_payload("flag"), r#"{"flag":""}"#);
    }
}
