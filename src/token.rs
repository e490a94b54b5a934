//! The `Authorization: Bearer <JWT>` header: splitting, decoding and the HS256 check.
//!
//! The token is decoded exactly once, refused or not: the claims are parsed from the (not yet
//! trusted) payload to learn `api_key`, the HMAC is then checked over the received
//! `header.payload` bytes, and only then are the claims believed. A refusal's facts come from
//! that same decoding (see `explain`).

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderValue;
use serde::Deserialize;

use crate::claims::{json_object, VonageClaims};
use crate::rejection::Rejection;
use crate::secrets::Secret;

/// Longest token accepted, in bytes; a Vonage token is about 400.
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest decoded JOSE header accepted; Vonage's is 27 bytes.
const MAX_HEADER_LEN: usize = 256;
const HS256_LEN: usize = 32;
/// `{"alg":"HS256","typ":"JWT"}`, base64url: the header of every Vonage token.
const VONAGE_HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The token of an `Authorization` header value: scheme `Bearer` in any case, then the token.
pub(crate) fn bearer_token(value: &HeaderValue) -> Result<&str, Rejection> {
    let value = value.to_str().map_err(|_| Rejection::MalformedToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(Rejection::MalformedToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::MalformedToken);
    }
    Ok(token.trim_matches(' '))
}

/// A token split and decoded, its signature not yet checked.
pub(crate) struct UnverifiedToken<'a> {
    signing_input: &'a [u8],
    signature: [u8; HS256_LEN],
    payload: &'a str,
}

#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    /// RFC 7515 §4.1.11: a token naming critical extensions the recipient does not understand
    /// (this one understands none, e.g. `b64`) must be refused. Only its presence matters.
    crit: Option<serde::de::IgnoredAny>,
}

impl<'a> UnverifiedToken<'a> {
    /// Splits `header.payload.signature`, pins HS256, and decodes the signature.
    pub(crate) fn split(token: &'a str) -> Result<Self, Rejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::MalformedToken);
        }
        let (signing_input, signature_b64) =
            token.rsplit_once('.').ok_or(Rejection::MalformedToken)?;
        let (header_b64, payload) = signing_input
            .split_once('.')
            .ok_or(Rejection::MalformedToken)?;
        // A third dot leaves one in `payload`, which then fails base64 decoding: malformed.

        // Pinned before any key is tried: `none`, HS384/512, RS*, ES* never reach the HMAC.
        // Vonage always sends the same header; only another one needs decoding.
        if header_b64 != VONAGE_HEADER_B64 {
            let mut header = [0u8; MAX_HEADER_LEN];
            let header_len = decode_into(header_b64, &mut header)?;
            let header: JoseHeader<'_> = serde_json::from_str(json_object(&header[..header_len])?)
                .map_err(|_| Rejection::MalformedToken)?;
            if header.alg != "HS256" {
                return Err(Rejection::UnsupportedAlgorithm);
            }
            if header.crit.is_some() {
                return Err(Rejection::MalformedToken);
            }
        }

        // One spare byte so that an over-long signature is seen as such, not as a decode error.
        let mut signature = [0u8; HS256_LEN + 1];
        if decode_into(signature_b64, &mut signature)? != HS256_LEN {
            return Err(Rejection::BadSignature);
        }
        let mut exact = [0u8; HS256_LEN];
        exact.copy_from_slice(&signature[..HS256_LEN]);

        Ok(Self {
            signing_input: signing_input.as_bytes(),
            signature: exact,
            payload,
        })
    }

    /// Decodes and parses the claims (still unverified).
    pub(crate) fn claims(&self) -> Result<VonageClaims, Rejection> {
        // Sized exactly, so that the buffer becomes the claims' `Bytes` without reallocating.
        let len = self.payload.len();
        let exact = len / 4 * 3 + (len % 4).saturating_sub(1);
        let mut json = vec![0u8; exact];
        let written = URL_SAFE_NO_PAD
            .decode_slice(self.payload, &mut json)
            .map_err(|_| Rejection::MalformedToken)?;
        json.truncate(written);
        VonageClaims::parse(json)
    }

    /// True when the HMAC-SHA256 of the signing input under `secret` equals the signature.
    /// The backend compares in constant time.
    pub(crate) fn signed_by(&self, secret: &Secret) -> bool {
        crate::keyed::verify(secret, self.signing_input, &self.signature)
    }
}

/// Decodes unpadded base64url into `out`, refusing input that does not fit.
fn decode_into(input: &str, out: &mut [u8]) -> Result<usize, Rejection> {
    // Checked before decoding so that an over-long segment is a clean rejection.
    if base64::decoded_len_estimate(input.len()) > out.len() {
        return Err(Rejection::MalformedToken);
    }
    URL_SAFE_NO_PAD
        .decode_slice(input, out)
        .map_err(|_| Rejection::MalformedToken)
}

/// Checks only the algorithm and the HMAC of `token` under `secret`, as the Vonage SDKs'
/// `verifySignature` does: no claim, time, body or replay check, so a captured token passes
/// for ever, with any body. Prefer [`CallbackVerifier`](crate::CallbackVerifier), which does
/// all but replay, or the layer, which does them all.
///
/// ```
/// use vonage_secure_callbacks::dangerous::verify_signature;
/// use vonage_secure_callbacks::{Rejection, Secret};
/// let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJTaW5hIiwibmFtZSI6IkphdmFfU0RLIiwiaWF0IjoxNjk4NjgwMzkyfQ.4qJpi46NSYURiLI1xoLIfGRygA8IUI2QSG9P2Kus1Oo";
/// let secret = Secret::new("XsA09z2MhUxYcdbXaUX3aTT7TzGmnCLfkdILf0NIyC9hN9criTEUdlI3OZ5hRjR").unwrap();
/// assert_eq!(verify_signature(token, &secret), Ok(()));
/// let other = Secret::new("XsA09z2MhUxYcdbXaUX3aTT7TzGmnCLfkdILf0NIyC9hN9criTEUdlI3OZ5hRjS").unwrap();
/// assert_eq!(verify_signature(token, &other), Err(Rejection::BadSignature));
/// ```
pub fn verify_signature(token: &str, secret: &Secret) -> Result<(), Rejection> {
    if UnverifiedToken::split(token)?.signed_by(secret) {
        Ok(())
    } else {
        Err(Rejection::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let v = HeaderValue::from_static("bEaReR abc.def.ghi");
        assert_eq!(bearer_token(&v), Ok("abc.def.ghi"));
        for bad in ["Basic abc", "Bearer", "Bearerabc.def.ghi", "Token a.b.c"] {
            let v = HeaderValue::from_static(bad);
            assert_eq!(bearer_token(&v), Err(Rejection::MalformedToken), "{bad}");
        }
        let non_ascii = HeaderValue::from_bytes(b"Bearer \xff").unwrap();
        assert_eq!(bearer_token(&non_ascii), Err(Rejection::MalformedToken));
    }

    #[test]
    fn other_algorithms_are_refused_before_any_key() {
        let sig = URL_SAFE_NO_PAD.encode([0u8; 32]);
        for alg in [
            "none", "HS384", "HS512", "RS256", "ES256", "hs256", "HS256 ",
        ] {
            let t = format!(
                "{}.{}.{sig}",
                b64(&format!(r#"{{"alg":"{alg}"}}"#)),
                b64("{}")
            );
            assert_eq!(
                UnverifiedToken::split(&t).err(),
                Some(Rejection::UnsupportedAlgorithm),
                "{alg}"
            );
        }
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        assert_eq!(
            UnverifiedToken::split(&none).err(),
            Some(Rejection::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn the_fast_header_path_is_vonages_header() {
        assert_eq!(b64(r#"{"alg":"HS256","typ":"JWT"}"#), VONAGE_HEADER_B64);
        let sig = URL_SAFE_NO_PAD.encode([0u8; 32]);
        let t = format!("{VONAGE_HEADER_B64}.e30.{sig}");
        assert!(UnverifiedToken::split(&t).is_ok());
        // Another header meaning the same is decoded and accepted too.
        let t = format!("{}.e30.{sig}", b64(r#"{"typ":"JWT","alg":"HS256"}"#));
        assert!(UnverifiedToken::split(&t).is_ok());
    }

    #[test]
    fn structure_errors_are_malformed() {
        let h = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
        let sig = URL_SAFE_NO_PAD.encode([0u8; 32]);
        for t in [
            String::new(),
            "abc".into(),
            "a.b".into(),
            format!("{h}.e30.{sig}.x"),
            format!("{h}.e30.{sig}="),
            format!("@@.e30.{sig}"),
            format!("{}.e30.{sig}", b64("not json")),
            format!("{}.e30.{sig}", b64(r#"{"typ":"JWT"}"#)),
            format!("{}.e30.{sig}", b64(&"x".repeat(300))),
            format!("{h}.e30.{}", "A".repeat(MAX_TOKEN_LEN)),
        ] {
            assert_eq!(
                UnverifiedToken::split(&t).err(),
                Some(Rejection::MalformedToken),
                "{t}"
            );
        }
        let short_sig = format!("{h}.e30.{}", URL_SAFE_NO_PAD.encode([0u8; 31]));
        assert_eq!(
            UnverifiedToken::split(&short_sig).err(),
            Some(Rejection::BadSignature)
        );
        let long_sig = format!("{h}.e30.{}", URL_SAFE_NO_PAD.encode([0u8; 33]));
        assert_eq!(
            UnverifiedToken::split(&long_sig).err(),
            Some(Rejection::BadSignature)
        );
    }

    #[test]
    fn headers_must_be_plain_json_objects_without_crit() {
        let sig = URL_SAFE_NO_PAD.encode([0u8; 32]);
        let raw_header = |h: &[u8]| format!("{}.e30.{sig}", URL_SAFE_NO_PAD.encode(h));
        for header in [
            &br#"{"alg":"HS256","crit":["exp"],"exp":1}"#[..],
            br#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
            br#"{"alg":"HS256","crit":[]}"#,
            br#"["HS256"]"#,
            b"{\"alg\":\"HS256\",\"kid\":\"\xff\xfe\"}",
        ] {
            assert_eq!(
                UnverifiedToken::split(&raw_header(header)).err(),
                Some(Rejection::MalformedToken),
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        assert!(UnverifiedToken::split(&raw_header(br#"{"alg":"HS256","kid":"1"}"#)).is_ok());
    }

    #[test]
    fn hmac_is_over_the_received_bytes() {
        let raw = "VonageSignatureSecretForTests1234567890";
        let secret = Secret::new(raw).unwrap();
        let signer = crate::test_util::CallbackSigner::new("k", raw);
        let v = signer.sign_json(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"iat":1,"jti":"j","api_key":"k"}"#,
        );
        assert_eq!(verify_signature(&v, &secret), Ok(()));
        // Same header and claims, re-serialised with other spacing: other bytes, no match.
        let (_, rest) = v.split_once('.').unwrap();
        let sig = rest.split_once('.').unwrap().1;
        let h = b64(r#"{"alg":"HS256", "typ":"JWT"}"#);
        let forged = format!("{h}.{}.{sig}", b64(r#"{"iat":1,"jti":"j","api_key":"k"}"#));
        assert_eq!(
            verify_signature(&forged, &secret),
            Err(Rejection::BadSignature)
        );
    }

    /// With both backends compiled in, jsonwebtoken has no process default (its `encode` and
    /// `decode` would panic); naming the provider keeps verification working.
    #[cfg(all(feature = "rust_crypto", feature = "aws_lc_rs"))]
    #[test]
    fn both_backends_enabled_still_verifies() {
        use jsonwebtoken::crypto::CryptoProvider;
        assert!(CryptoProvider::try_get_default().is_none());
        let raw = "VonageSignatureSecretForTests1234567890";
        let token = crate::test_util::CallbackSigner::new("k", raw).token(b"{}");
        assert_eq!(verify_signature(&token, &Secret::new(raw).unwrap()), Ok(()));
    }
}
