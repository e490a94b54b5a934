//! The verified claims of a Vonage callback token.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::rejection::Rejection;

/// The claims of a callback token that passed every check, placed in the request's extensions.
///
/// In axum: `Extension(claims): Extension<VonageClaims>`. The claims live in the one buffer the
/// token was decoded into; the text accessors borrow from it, and cloning is cheap.
#[derive(Clone)]
pub struct VonageClaims {
    /// The decoded JSON object of all claims, exactly as signed: checked to be UTF-8 once, when
    /// parsed, so that the accessors slice it without checking again. Shared, so that a clone
    /// (axum's `Extension` takes one) copies no text.
    raw: Arc<String>,
    iat: u64,
    exp: Option<u64>,
    nbf: Option<u64>,
    jti: Text,
    iss: Text,
    api_key: Text,
    payload_hash: Option<Text>,
    application_id: Option<Text>,
    /// Which of the project's secrets verified the token; set once the HMAC matched.
    secret: SecretUsed,
}

/// Which of a project's secrets verified a callback: its position among the project's secrets
/// (in the order they were added) and its label, if it has one. Never the secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretUsed {
    index: usize,
    label: Option<std::sync::Arc<str>>,
}

impl SecretUsed {
    pub(crate) fn new(index: usize, label: Option<std::sync::Arc<str>>) -> Self {
        Self { index, label }
    }

    /// Position among the project's secrets, from 0, in the order they were added.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The secret's label ([`Secret::labelled`](crate::Secret::labelled)), if it has one.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
}

impl fmt::Display for SecretUsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label {
            Some(label) => f.write_str(label),
            None => write!(f, "#{}", self.index),
        }
    }
}

/// A string claim: where it stands in `raw`, or, when JSON escapes made it differ from its
/// bytes there (rare), its own copy.
#[derive(Clone)]
enum Text {
    Span { start: u32, end: u32 },
    Owned(Box<str>),
}

/// The claims as they appear on the wire, borrowing from the decoded buffer. Every field is
/// optional here so that a missing claim gets its own rejection; a field of the wrong JSON
/// type, or a duplicated one, fails the parse.
#[derive(Deserialize)]
struct WireClaims<'a> {
    iat: Option<u64>,
    #[serde(borrow)]
    jti: Option<Str<'a>>,
    #[serde(borrow)]
    iss: Option<Str<'a>>,
    #[serde(borrow)]
    payload_hash: Option<Str<'a>>,
    #[serde(borrow)]
    api_key: Option<Str<'a>>,
    #[serde(borrow)]
    application_id: Option<Str<'a>>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// A string that borrows unless escapes forced a copy. (serde borrows a `Cow<str>` only when it
/// is a field's whole type, not inside an `Option`: hence the newtype.)
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

impl Text {
    fn new(raw: &[u8], value: Cow<'_, str>) -> Self {
        match value {
            Cow::Borrowed(s) => {
                // Pointer arithmetic on addresses only: where the borrowed text starts in `raw`.
                let start = s.as_ptr() as usize - raw.as_ptr() as usize;
                Text::Span {
                    start: start as u32,
                    end: (start + s.len()) as u32,
                }
            }
            Cow::Owned(s) => Text::Owned(s.into_boxed_str()),
        }
    }
}

/// A JOSE header or claims set must be a JSON object of valid UTF-8, throughout: serde would
/// fill a struct from an array by position, and skips ignored fields without checking their
/// UTF-8.
pub(crate) fn json_object(json: &[u8]) -> Result<&str, Rejection> {
    let text = std::str::from_utf8(json).map_err(|_| Rejection::MalformedToken)?;
    object(text)
}

/// `text`, if it is a JSON object (by its first character; serde checks the rest).
fn object(text: &str) -> Result<&str, Rejection> {
    if text.trim_start().starts_with('{') {
        Ok(text)
    } else {
        Err(Rejection::MalformedToken)
    }
}

impl VonageClaims {
    /// Parses the decoded claims JSON of a token (not yet verified).
    ///
    /// A missing `iss` or `payload_hash` is kept as empty/`None` so that the later checks can
    /// name it; every other required claim must be present.
    pub(crate) fn parse(json: Vec<u8>) -> Result<Self, Rejection> {
        // Spans are u32; the token length limit keeps payloads far below that.
        if json.len() > u32::MAX as usize {
            return Err(Rejection::MalformedToken);
        }
        let json = String::from_utf8(json).map_err(|_| Rejection::MalformedToken)?;
        let wire: WireClaims<'_> =
            serde_json::from_str(object(&json)?).map_err(|_| Rejection::MalformedToken)?;
        let (Some(iat), Some(jti), Some(api_key)) = (wire.iat, wire.jti, wire.api_key) else {
            return Err(Rejection::MalformedToken);
        };
        let text = |value: Str<'_>| Text::new(json.as_bytes(), value.0);
        // The spans first: they borrow the text that the claims then take.
        let (jti, iss, api_key) = (
            text(jti),
            wire.iss.map_or(Text::Owned(Box::default()), text),
            text(api_key),
        );
        let (payload_hash, application_id) =
            (wire.payload_hash.map(text), wire.application_id.map(text));
        Ok(Self {
            iat,
            exp: wire.exp,
            nbf: wire.nbf,
            jti,
            iss,
            api_key,
            payload_hash,
            application_id,
            raw: Arc::new(json),
            secret: SecretUsed::default(),
        })
    }

    pub(crate) fn set_secret(&mut self, secret: SecretUsed) {
        self.secret = secret;
    }

    /// Which of the project's secrets verified this token: watch it during a rotation, and
    /// remove the old secret once nothing is verified by it any more.
    pub fn secret(&self) -> &SecretUsed {
        &self.secret
    }

    fn text<'a>(&'a self, text: &'a Text) -> &'a str {
        match text {
            // The span was cut from a `&str` serde_json borrowed from this very text, so it
            // lies on character boundaries; `get` keeps even a wrong span from panicking.
            Text::Span { start, end } => self
                .raw
                .get(*start as usize..*end as usize)
                .unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }

    /// Issued-at, Unix seconds.
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// The token's unique id (a UUID), the key of replay protection.
    pub fn jti(&self) -> &str {
        self.text(&self.jti)
    }

    /// The issuer, `"Vonage"` unless configured otherwise.
    pub fn iss(&self) -> &str {
        self.text(&self.iss)
    }

    /// The API key (project) whose secret signed the token.
    pub fn api_key(&self) -> &str {
        self.text(&self.api_key)
    }

    /// Lowercase hex SHA-256 of the body, as sent. `None` only when the payload hash check was
    /// switched off with [`crate::dangerous::skip_payload_hash_check`] and the claim is absent.
    pub fn payload_hash(&self) -> Option<&str> {
        self.payload_hash.as_ref().map(|t| self.text(t))
    }

    /// The Vonage application, when the token names one.
    pub fn application_id(&self) -> Option<&str> {
        self.application_id.as_ref().map(|t| self.text(t))
    }

    /// Expiry, Unix seconds, when present (Vonage does not send one).
    pub fn exp(&self) -> Option<u64> {
        self.exp
    }

    /// Not-before, Unix seconds, when present.
    pub fn nbf(&self) -> Option<u64> {
        self.nbf
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
            serde_json::from_str(&self.raw).ok()?;
        serde_json::from_value(all.remove(name)?).ok()
    }

    /// The decoded claims JSON object exactly as signed, to deserialize into a type of your own.
    pub fn raw_json(&self) -> &[u8] {
        self.raw.as_bytes()
    }
}

impl PartialEq for VonageClaims {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for VonageClaims {}

impl fmt::Debug for VonageClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VonageClaims")
            .field("iat", &self.iat)
            .field("jti", &self.jti())
            .field("iss", &self.iss())
            .field("payload_hash", &self.payload_hash())
            .field("api_key", &self.api_key())
            .field("application_id", &self.application_id())
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
        assert_eq!(
            (c.iat(), c.jti(), c.api_key(), c.iss()),
            (1, "j", "k", "Vonage")
        );
        assert_eq!(c.application_id(), Some("app"));
        assert_eq!(c.payload_hash(), Some("ab"));
        assert_eq!(c.claim::<String>("region").as_deref(), Some("eu"));
        assert_eq!(c.claim::<u64>("region"), None);
        assert_eq!(c.claim::<String>("absent"), None);
        assert_eq!(c.clone(), c);
        assert!(format!("{c:?}").contains(r#"jti: "j""#));
    }

    #[test]
    fn claims_must_be_an_object_of_valid_utf8() {
        // An array would fill the fields by position; invalid UTF-8 in an ignored claim would be
        // handed on through `raw_json()`.
        let array = br#"[1,"j","Vonage","ab","k"]"#.to_vec();
        assert_eq!(
            VonageClaims::parse(array).err(),
            Some(Rejection::MalformedToken)
        );
        let bad_utf8 =
            b"{\"iat\":1,\"jti\":\"j\",\"api_key\":\"k\",\"note\":\"\xc3\x28\"}".to_vec();
        assert_eq!(
            VonageClaims::parse(bad_utf8).err(),
            Some(Rejection::MalformedToken)
        );
        assert!(parse(r#" {"iat":1,"jti":"j","api_key":"k","note":"é"}"#).is_ok());
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let c = parse(r#"{"iat":1,"jti":"a\"b\u00e9","api_key":"\u006b"}"#).unwrap();
        assert_eq!(c.jti(), "a\"bé");
        assert_eq!(c.api_key(), "k");
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
            assert_eq!(parse(json).err(), Some(Rejection::MalformedToken), "{json}");
        }
    }

    #[test]
    fn missing_iss_and_hash_are_left_for_later_checks() {
        let c = parse(r#"{"iat":1,"jti":"j","api_key":"k"}"#).unwrap();
        assert_eq!(c.iss(), "");
        assert_eq!(c.payload_hash(), None);
    }
}
