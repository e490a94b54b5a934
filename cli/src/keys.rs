//! Where the CLI gets the API key and the signature secrets: the environment, or files named on
//! the command line (never the secret itself). Every verb holds secrets to one rule: at least
//! 32 bytes, as Vonage's are, unless `--allow-short-secret` says otherwise.

use std::path::PathBuf;

use clap::Args;
use vonage_secure_callbacks::{
    Secret, SecretError, Secrets, API_KEY_VAR, MIN_SECRET_LEN, PREVIOUS_SECRET_VAR, SECRET_VAR,
};

use crate::Error;

#[derive(Args)]
pub struct KeyArgs {
    /// The project's API key (not a secret).
    #[arg(long, env = API_KEY_VAR)]
    api_key: Option<String>,
    /// A file holding the signature secret (one line); repeat it for several secrets, the
    /// first one being the current. Default: VONAGE_SIGNATURE_SECRET (and _PREVIOUS).
    #[arg(
        long,
        value_name = "FILE",
        env = "VONAGE_SIGNATURE_SECRET_FILE",
        value_delimiter = ','
    )]
    secret_file: Vec<PathBuf>,
    /// Accept a secret shorter than 32 bytes (the SDKs' test vectors use such secrets;
    /// Vonage's own are longer).
    #[arg(long, env = "VONAGE_ALLOW_SHORT_SECRET")]
    allow_short_secret: bool,
}

impl KeyArgs {
    pub fn api_key(&self) -> Result<String, Error> {
        self.api_key
            .clone()
            .filter(|key| !key.is_empty())
            .ok_or_else(|| format!("give --api-key or set {API_KEY_VAR}").into())
    }

    /// The secret to sign with: the first file, else VONAGE_SIGNATURE_SECRET.
    pub fn signing_secret(&self) -> Result<String, Error> {
        let (text, source) = match self.secret_file.first() {
            Some(path) => (read_secret(path)?, path.display().to_string()),
            None => (env_secret(SECRET_VAR)?, SECRET_VAR.to_owned()),
        };
        self.secret(text.clone(), &source)?;
        Ok(text)
    }

    /// Every secret to verify with: the files (labelled by their names), else the environment
    /// (`current`, and `previous` while rotating).
    pub fn secrets(&self) -> Result<Secrets, Error> {
        let api_key = self.api_key()?;
        let mut secrets = Secrets::new();
        if self.secret_file.is_empty() {
            let current = self.secret(env_secret(SECRET_VAR)?, SECRET_VAR)?;
            secrets = secrets.project(api_key.clone(), current.labelled("current"));
            if let Some(previous) = std::env::var(PREVIOUS_SECRET_VAR)
                .ok()
                .filter(|v| !v.is_empty())
            {
                let previous = self.secret(previous, PREVIOUS_SECRET_VAR)?;
                secrets = secrets.project(api_key, previous.labelled("previous"));
            }
            return Ok(secrets);
        }
        for path in &self.secret_file {
            let label = path.file_name().map_or_else(
                || path.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
            let secret = self.secret(read_secret(path)?, &path.display().to_string())?;
            secrets = secrets.project(api_key.clone(), secret.labelled(label));
        }
        Ok(secrets)
    }

    /// `text` as a secret, by the one rule; `source` names where it came from in the error.
    fn secret(&self, text: String, source: &str) -> Result<Secret, Error> {
        let made = if self.allow_short_secret {
            vonage_secure_callbacks::dangerous::short_secret(text)
        } else {
            Secret::new(text)
        };
        made.map_err(|err| match err {
            SecretError::TooShort { len } => format!(
                "{source}: the signature secret is {len} bytes, and Vonage's have at least \
                 {MIN_SECRET_LEN}: copy the whole secret from the dashboard, or give \
                 --allow-short-secret (VONAGE_ALLOW_SHORT_SECRET=true) to accept a short one"
            )
            .into(),
            other => format!("{source}: {other}").into(),
        })
    }
}

/// A secret from the environment, or an error that says how to give one.
fn env_secret(var: &str) -> Result<String, Error> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("set {var} or give --secret-file (never the secret itself)").into())
}

/// A secret file's content without the line ending an editor adds.
fn read_secret(path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}
