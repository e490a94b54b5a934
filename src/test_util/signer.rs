//! [`CallbackSigner`]: tokens as Vonage signs them.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::keyed::PROVIDER;
use crate::payload::payload_hash;

/// The JOSE header Vonage sends.
pub const VONAGE_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Produces `Authorization` values that the layer accepts: HS256 over Vonage's claims, with
/// `payload_hash` of the exact body bytes, a fresh `jti` and `iat` of now.
#[derive(Clone)]
pub struct CallbackSigner {
    pub(super) api_key: String,
    key: EncodingKey,
    application_id: Option<String>,
}

impl CallbackSigner {
    /// A signer for project `api_key` with its signature `secret` (its UTF-8 bytes).
    ///
    /// # Panics
    /// If `secret` is empty: no HMAC key can be made of it.
    pub fn new(api_key: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        Self {
            api_key: api_key.into(),
            key: EncodingKey::from_secret(secret.as_ref())
                .expect("a signature secret must not be empty"),
            application_id: None,
        }
    }

    /// Adds an `application_id` claim to every token.
    pub fn application_id(mut self, id: impl Into<String>) -> Self {
        self.application_id = Some(id.into());
        self
    }

    /// The claims Vonage would send for `body` at time `iat`.
    pub fn claims(&self, body: &[u8], iat: u64) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("iat".into(), json!(iat));
        claims.insert("jti".into(), json!(fresh_jti()));
        claims.insert("iss".into(), json!("Vonage"));
        claims.insert("payload_hash".into(), json!(payload_hash(body)));
        claims.insert("api_key".into(), json!(self.api_key));
        if let Some(id) = &self.application_id {
            claims.insert("application_id".into(), json!(id));
        }
        claims
    }

    /// A signed token for `body`, issued now.
    pub fn token(&self, body: &[u8]) -> String {
        self.token_with(body, |_| {})
    }

    /// `Bearer <token>` for `body`, issued now: the value of the `Authorization` header.
    pub fn authorization(&self, body: &[u8]) -> String {
        format!("Bearer {}", self.token(body))
    }

    /// A signed token for `body` whose claims `edit` may change first (an old `iat`, another
    /// `iss`, a chosen `jti`, extra claims, a removed `payload_hash`...).
    pub fn token_with(&self, body: &[u8], edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut claims = self.claims(body, SystemClock.now());
        edit(&mut claims);
        self.sign_json(VONAGE_HEADER, Value::Object(claims).to_string())
    }

    /// Signs any header and claims bytes with HS256, byte for byte as given (not even UTF-8
    /// is required): for tests of malformed tokens that still carry a valid signature.
    pub fn sign_json(
        &self,
        header_json: impl AsRef<[u8]>,
        claims_json: impl AsRef<[u8]>,
    ) -> String {
        let (header_json, claims_json) = (header_json.as_ref(), claims_json.as_ref());
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let signer = (PROVIDER.signer_factory)(&Algorithm::HS256, &self.key)
            .expect("an HMAC key always makes an HS256 signer");
        let signature = signer
            .try_sign(signing_input.as_bytes())
            .expect("HMAC signing cannot fail");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

impl fmt::Debug for CallbackSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackSigner")
            .field("api_key", &self.api_key)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A random version-4 UUID (unique in the process, unpredictable across processes).
pub fn fresh_jti() -> String {
    let words = [crate::random::unique_u64(), crate::random::unique_u64()];
    let n = (u128::from(words[0]) << 64 | u128::from(words[1])) & !(0xf << 76) & !(0x3 << 62)
        | (0x4 << 76)
        | (0x2 << 62);
    let s = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jtis_are_uuid_v4_and_distinct() {
        let a = fresh_jti();
        let b = fresh_jti();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = CallbackSigner::new("k", "hidden-hidden-hidden-hidden-hidden");
        assert!(!format!("{s:?}").contains("hidden"));
    }
}
