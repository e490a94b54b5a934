//! The verified claims of a Vonage callback token.

use std::fmt;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::rejection::Rejection;

/// The claims of a callback token that passed every check, placed in the request's extensions.
///
/// In axum: `Extension(claims): Extension<VonageClaims>`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VonageClaims {
    /// Issued-at, Unix seconds.
    pub iat: u64,
    /// The token's unique id (a UUID), the key of replay protection.
    pub jti: String,
    /// The issuer, `"Vonage"` unless configured otherwise.
    pub iss: String,
    /// Lowercase hex SHA-256 of the body, as sent. `None` only when the payload hash check
    /// was switched off with [`crate::dangerous::skip_payload_hash_check`] and the claim is absent.
    pub payload_hash: Option<String>,
    /// The API key (project) whose secret signed the token.
    pub api_key: String,
    /// The Vonage application, when the token names one.
    pub application_id: Option<String>,
    /// Expiry, Unix seconds, when present (Vonage does not send one).
    pub exp: Option<u64>,
    /// Not-before, Unix seconds, when present.
    pub nbf: Option<u64>,
    /// The decoded JSON object of all claims, for claims this type does not name.
    raw: Bytes,
}

/// The claims as they appear on the wire. Every field is optional here so that a missing claim
/// gets its own rejection; a field of the wrong JSON type, or a duplicated one, fails the parse.
#[derive(Deserialize)]
struct WireClaims {
    iat: Option<u64>,
    jti: Option<String>,
    iss: Option<String>,
    payload_hash: Option<String>,
    api_key: Option<String>,
    application_id: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

impl VonageClaims {
    /// Parses the decoded claims JSON of a token (not yet verified).
    ///
    /// A missing `iss` or `payload_hash` is kept as empty/`None` so that the later checks can
    /// name it; every other required claim must be present.
    pub(crate) fn parse(json: Vec<u8>) -> Result<Self, Rejection> {
        let wire: WireClaims =
            serde_json::from_slice(&json).map_err(|_| Rejection::MalformedToken)?;
        let (Some(iat), Some(jti), Some(api_key)) = (wire.iat, wire.jti, wire.api_key) else {
            return Err(Rejection::MalformedToken);
        };
        Ok(Self {
            iat,
            jti,
            iss: wire.iss.unwrap_or_default(),
            payload_hash: wire.payload_hash,
            api_key,
            application_id: wire.application_id,
            exp: wire.exp,
            nbf: wire.nbf,
            raw: Bytes::from(json),
        })
    }

    /// Any claim by name, deserialized as `T`; `None` when absent or of another type.
    ///
    /// ```
    /// # use vonage_secure_callbacks::VonageClaims;
    /// fn region(claims: &VonageClaims) -> Option<String> {
    ///     claims.claim::<String>("region")
    /// }
    /// ```
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let mut all: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&self.raw).ok()?;
        serde_json::from_value(all.remove(name)?).ok()
    }

    /// The decoded claims JSON object exactly as signed, to deserialize into a type of your own.
    pub fn raw_json(&self) -> &[u8] {
        &self.raw
    }
}

impl fmt::Debug for VonageClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VonageClaims")
            .field("iat", &self.iat)
            .field("jti", &self.jti)
            .field("iss", &self.iss)
            .field("payload_hash", &self.payload_hash)
            .field("api_key", &self.api_key)
            .field("application_id", &self.application_id)
            .field("exp", &self.exp)
            .field("nbf", &self.nbf)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<VonageClaims, Rejection> {
        VonageClaims::parse(json.as_bytes().to_vec())
    }

    #[test]
    fn parses_vonage_claims_and_keeps_extras() {
        let c = parse(
            r#"{"iat":1,"jti":"j","iss":"Vonage","payload_hash":"ab","api_key":"k",
                "application_id":"app","region":"eu"}"#,
        )
        .unwrap();
        assert_eq!((c.iat, c.jti.as_str(), c.api_key.as_str()), (1, "j", "k"));
        assert_eq!(c.application_id.as_deref(), Some("app"));
        assert_eq!(c.claim::<String>("region").as_deref(), Some("eu"));
        assert_eq!(c.claim::<u64>("region"), None);
        assert_eq!(c.claim::<String>("absent"), None);
    }

    #[test]
    fn wrong_types_duplicates_and_missing_claims_are_malformed() {
        for json in [
            r#"{"iat":"1","jti":"j","api_key":"k"}"#,
            r#"{"iat":-1,"jti":"j","api_key":"k"}"#,
            r#"{"iat":1.5,"jti":"j","api_key":"k"}"#,
            r#"{"iat":1,"jti":7,"api_key":"k"}"#,
            r#"{"iat":1,"jti":"j","api_key":"k","payload_hash":1}"#,
            r#"{"iat":1,"jti":"j","api_key":"k","api_key":"k2"}"#,
            r#"{"iat":1,"jti":"j","api_key":"k","exp":"soon"}"#,
            r#"{"jti":"j","api_key":"k"}"#,
            r#"{"iat":1,"api_key":"k"}"#,
            r#"{"iat":1,"jti":"j"}"#,
            r#"[1,2]"#,
            r#"{"iat":1,"jti":"j","api_key":"k""#,
        ] {
            assert_eq!(parse(json), Err(Rejection::MalformedToken), "{json}");
        }
    }

    #[test]
    fn missing_iss_and_hash_are_left_for_later_checks() {
        let c = parse(r#"{"iat":1,"jti":"j","api_key":"k"}"#).unwrap();
        assert_eq!(c.iss, "");
        assert_eq!(c.payload_hash, None);
    }
}
