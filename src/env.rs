//! Configuration from the environment, with the names the examples use.

use std::fmt;

use crate::secrets::{Secret, SecretError, Secrets, MIN_SECRET_LEN};

/// The project's API key.
pub const API_KEY_VAR: &str = "VONAGE_API_KEY";
/// The project's signature secret.
pub const SECRET_VAR: &str = "VONAGE_SIGNATURE_SECRET";
/// A second secret accepted beside it while a secret is being rotated (optional).
pub const PREVIOUS_SECRET_VAR: &str = "VONAGE_SIGNATURE_SECRET_PREVIOUS";

/// Why [`Secrets::from_env`] found no usable configuration. Names variables, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvError {
    /// Neither [`API_KEY_VAR`] nor [`SECRET_VAR`] is set (a development machine, say).
    NotSet,
    /// One of the pair is set and this one is not (or is empty).
    Missing {
        /// The variable that is missing.
        variable: &'static str,
    },
    /// The variable is set but its secret is refused.
    Invalid {
        /// The variable whose value was refused.
        variable: &'static str,
        /// Why (its length, never its content).
        reason: SecretError,
    },
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::NotSet => write!(f, "{API_KEY_VAR} and {SECRET_VAR} are not set"),
            EnvError::Missing { variable } => write!(
                f,
                "{variable} is not set, but the other of {API_KEY_VAR} / {SECRET_VAR} is: set \
                 both, or neither"
            ),
            // The way out for someone configuring by environment: the library's opt-in for
            // short secrets is a function they cannot call from here.
            EnvError::Invalid {
                variable,
                reason: SecretError::TooShort { len },
            } => write!(
                f,
                "{variable}: the signature secret is {len} bytes, and Vonage's have at least \
                 {MIN_SECRET_LEN}: copy the whole secret from the dashboard"
            ),
            EnvError::Invalid { variable, reason } => write!(f, "{variable}: {reason}"),
        }
    }
}

impl std::error::Error for EnvError {}

impl Secrets {
    /// The project of [`API_KEY_VAR`] with the secret of [`SECRET_VAR`] (labelled `current`),
    /// and, while a secret is being rotated, the one of [`PREVIOUS_SECRET_VAR`] too (labelled
    /// `previous`; see [`VonageClaims::secret`](crate::VonageClaims::secret)).
    ///
    /// ```no_run
    /// use vonage_secure_callbacks::{SecureCallbackLayer, Secrets};
    /// let layer = SecureCallbackLayer::new(Secrets::from_env()?);
    /// # Ok::<(), vonage_secure_callbacks::EnvError>(())
    /// ```
    pub fn from_env() -> Result<Secrets, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup` (for tests, or
    /// another source of settings). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Secrets, EnvError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let (api_key, secret) = match (get(API_KEY_VAR), get(SECRET_VAR)) {
            (None, None) => return Err(EnvError::NotSet),
            (Some(_), None) => {
                return Err(EnvError::Missing {
                    variable: SECRET_VAR,
                })
            }
            (None, Some(_)) => {
                return Err(EnvError::Missing {
                    variable: API_KEY_VAR,
                })
            }
            (Some(key), Some(secret)) => (key, secret),
        };
        let parse = |variable: &'static str, value: &str, label: &str| {
            Secret::new(value)
                .map(|secret| secret.labelled(label))
                .map_err(|reason| EnvError::Invalid { variable, reason })
        };
        let current = parse(SECRET_VAR, &secret, "current")?;
        let mut secrets = Secrets::new().project(api_key.clone(), current);
        if let Some(previous) = get(PREVIOUS_SECRET_VAR) {
            let previous = parse(PREVIOUS_SECRET_VAR, &previous, "previous")?;
            secrets = secrets.project(api_key, previous);
        }
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-project-signature-secret-of-enough-bytes";

    fn from(pairs: &[(&str, &str)]) -> Result<Secrets, EnvError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Secrets::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn both_or_neither() {
        assert_eq!(from(&[]).err(), Some(EnvError::NotSet));
        assert_eq!(
            from(&[(API_KEY_VAR, "abcd1234")]).err(),
            Some(EnvError::Missing {
                variable: SECRET_VAR
            })
        );
        assert_eq!(
            from(&[(SECRET_VAR, SECRET), (API_KEY_VAR, "")]).err(),
            Some(EnvError::Missing {
                variable: API_KEY_VAR
            })
        );
        let secrets = from(&[(API_KEY_VAR, "abcd1234"), (SECRET_VAR, SECRET)]).unwrap();
        assert_eq!(secrets.secrets_for("abcd1234").len(), 1);
    }

    #[test]
    fn a_previous_secret_is_accepted_beside_the_current_one() {
        let secrets = from(&[
            (API_KEY_VAR, "abcd1234"),
            (SECRET_VAR, SECRET),
            (PREVIOUS_SECRET_VAR, "the-previous-project-signature-secret"),
        ])
        .unwrap();
        let labels: Vec<_> = secrets
            .secrets_for("abcd1234")
            .iter()
            .map(|s| s.label())
            .collect();
        assert_eq!(labels, [Some("current"), Some("previous")]);
    }

    #[test]
    fn errors_name_the_variable_never_the_value() {
        let err = from(&[
            (API_KEY_VAR, "abcd1234"),
            (SECRET_VAR, "short-secret-value"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(SECRET_VAR) && !text.contains("short-secret-value"),
            "{text}"
        );
        // The way out is one someone configuring by environment can take.
        assert!(
            text.contains("copy the whole secret") && !text.contains("dangerous"),
            "{text}"
        );
        let text = from(&[(API_KEY_VAR, "abcd1234")]).unwrap_err().to_string();
        assert!(text.contains(SECRET_VAR), "{text}");
    }
}
