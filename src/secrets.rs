//! Signature secrets, keyed by the Vonage API key (project) that signs with them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jsonwebtoken::DecodingKey;

/// The shortest secret accepted without [`crate::dangerous::short_secret`]: 32 bytes, the
/// output size of SHA-256 (RFC 7518 §3.2 asks HS256 keys to be at least that long).
pub const MIN_SECRET_LEN: usize = 32;

/// One signature secret: its UTF-8 bytes, zeroized when dropped and never printed. (Each
/// thread that verified with it also keeps its keyed HMAC state, not its text, until eight
/// other secrets displace it or the thread ends; see `SECURITY.md`.)
///
/// Vonage keys HMAC-SHA256 with the secret's text as it is shown in the dashboard; it is never
/// hex- or base64-decoded first.
#[derive(Clone)]
pub struct Secret {
    // jsonwebtoken's key type zeroizes its bytes on drop and redacts its own Debug.
    key: DecodingKey,
    label: Option<Arc<str>>,
    /// Unique to this secret and its clones: the key of its per-thread keyed verifier.
    id: u64,
}

impl Secret {
    /// Takes a secret of at least [`MIN_SECRET_LEN`] bytes.
    ///
    /// ```
    /// use vonage_secure_callbacks::Secret;
    /// assert!(Secret::new("ZYtdTtGV3BCFN7tWmOWr1md66XsquMggr4W2cTtXtcPgfnI0Xw").is_ok());
    /// assert!(Secret::new("too short").is_err());
    /// ```
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, SecretError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort { len: secret.len() });
        }
        Self::new_unchecked(secret)
    }

    /// Any non-empty secret; length policy is the caller's business.
    pub(crate) fn new_unchecked(secret: &[u8]) -> Result<Self, SecretError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        DecodingKey::from_secret(secret)
            .map(|key| Self {
                key,
                label: None,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            })
            .map_err(|_| SecretError::Empty)
    }

    /// Names this secret (`"2026-11"`, `"previous"`), never its content: the label of the secret
    /// that verified a callback is in its claims ([`VonageClaims::secret`]) and in the accepted
    /// callback's `tracing` event, so that during a rotation you can see when the old one stops
    /// being used.
    ///
    /// [`VonageClaims::secret`]: crate::VonageClaims::secret
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into().into());
        self
    }

    /// The label given with [`labelled`](Self::labelled).
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    pub(crate) fn clone_label(&self) -> Option<Arc<str>> {
        self.label.clone()
    }

    /// The secret's bytes, for the SMS scheme's hashes (jsonwebtoken keeps them for HMAC keys).
    #[cfg(feature = "sms")]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.key.try_get_as_bytes().unwrap_or_default()
    }

    pub(crate) fn key(&self) -> &DecodingKey {
        &self.key
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label {
            Some(label) => write!(f, "Secret({label:?}, <redacted>)"),
            None => f.write_str("Secret(<redacted>)"),
        }
    }
}

/// Why a secret was refused at construction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretError {
    /// Shorter than [`MIN_SECRET_LEN`]; `len` is its length, never its content.
    TooShort {
        /// Length in bytes of the refused secret.
        len: usize,
    },
    /// Empty: no HMAC key can be made of it, even with
    /// [`dangerous::short_secret`](crate::dangerous::short_secret).
    Empty,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::TooShort { len } => write!(
                f,
                "signature secret is {len} bytes; at least {MIN_SECRET_LEN} are required \
                 (use dangerous::short_secret to accept a shorter one)"
            ),
            SecretError::Empty => f.write_str(
                "signature secret is empty: copy the project's signature secret from the \
                 Vonage dashboard",
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// The secrets of every project whose callbacks are accepted, keyed by API key.
///
/// A project may have several secrets at once (rotation): a token signed with any of them
/// passes. The set is shared behind an [`Arc`], so cloning the layer is cheap.
///
/// ```
/// use vonage_secure_callbacks::{Secret, Secrets};
/// let secrets = Secrets::new()
///     .project("a1b2c3d", Secret::new("old-secret-old-secret-old-secret-0").unwrap())
///     .project("a1b2c3d", Secret::new("new-secret-new-secret-new-secret-1").unwrap());
/// assert_eq!(secrets.secrets_for("a1b2c3d").len(), 2);
/// // Debug never shows a secret.
/// assert!(!format!("{secrets:?}").contains("secret-old"));
/// ```
#[derive(Clone, Default)]
pub struct Secrets {
    projects: Arc<HashMap<Arc<str>, Project>>,
}

/// One project's secrets and, with feature `metrics`, the series its accepted callbacks count in.
#[derive(Clone, Default)]
struct Project {
    secrets: Vec<Secret>,
    #[cfg(feature = "metrics")]
    series: crate::metrics::ProjectSeries,
}

impl Secrets {
    /// An empty set: every callback is rejected as `unknown_api_key` until a project is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `secret` for the project `api_key`, beside any secret it already has.
    pub fn project(mut self, api_key: impl Into<String>, secret: Secret) -> Self {
        let api_key: String = api_key.into();
        let project = Arc::make_mut(&mut self.projects)
            .entry(Arc::from(api_key))
            .or_default();
        project.secrets.push(secret);
        // Its series are registered anew, with the new secret among them.
        #[cfg(feature = "metrics")]
        {
            project.series = Default::default();
        }
        self
    }

    /// The secrets configured for `api_key`, empty for an unknown key.
    pub fn secrets_for(&self, api_key: &str) -> &[Secret] {
        self.projects
            .get(api_key)
            .map_or(&[], |project| project.secrets.as_slice())
    }

    /// The configured key equal to `api_key`, shared: a metric label without a copy.
    #[cfg(feature = "metrics")]
    pub(crate) fn configured_key(&self, api_key: &str) -> Option<&Arc<str>> {
        self.projects.get_key_value(api_key).map(|(key, _)| key)
    }

    /// The series of `api_key`'s accepted callbacks, registered on first use; `None` for a key
    /// not configured.
    #[cfg(feature = "metrics")]
    pub(crate) fn accepted_series(&self, api_key: &str) -> Option<&crate::metrics::Accepted> {
        let (key, project) = self.projects.get_key_value(api_key)?;
        let labels = project.secrets.iter().map(Secret::clone_label);
        Some(project.series.get_or_register(key, labels))
    }

    /// The API keys that have secrets (API keys are not secrets).
    pub fn api_keys(&self) -> impl Iterator<Item = &str> {
        self.projects.keys().map(|key| &**key)
    }

    /// True when no project is configured.
    pub fn is_empty(&self) -> bool {
        self.projects.is_empty()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (api_key, project) in self.projects.iter() {
            map.entry(
                api_key,
                &format_args!("{} secret(s)", project.secrets.len()),
            );
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_short_secrets_without_echoing_them() {
        let err = Secret::new("0123456789abcdef0123456789abcde").unwrap_err();
        assert_eq!(err, SecretError::TooShort { len: 31 });
        // An empty one is refused even by the dangerous door, and says so without sending the
        // user back to it.
        let empty = crate::dangerous::short_secret("").unwrap_err();
        assert_eq!(empty, SecretError::Empty);
        assert!(!empty.to_string().contains("short_secret"), "{empty}");
        assert!(!err.to_string().contains("0123456789"));
        assert!(Secret::new("0123456789abcdef0123456789abcdef").is_ok());
    }

    #[test]
    fn unknown_projects_have_no_secrets() {
        let s = Secrets::new().project("k", Secret::new([7u8; 32]).unwrap());
        assert_eq!(s.secrets_for("k").len(), 1);
        assert!(s.secrets_for("other").is_empty());
        assert!(!s.is_empty());
        assert!(Secrets::new().is_empty());
    }

    #[test]
    fn labels_name_secrets_without_showing_them() {
        let secret = Secret::new("rotated-secret-value-rotated-secret")
            .unwrap()
            .labelled("2026-11");
        assert_eq!(secret.label(), Some("2026-11"));
        assert_eq!(format!("{secret:?}"), r#"Secret("2026-11", <redacted>)"#);
    }

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new("super-secret-value-super-secret-value").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let s = Secrets::new().project("key1", secret);
        let shown = format!("{s:?}");
        assert!(shown.contains("key1") && !shown.contains("super-secret"));
    }
}
