//! Where the CLI gets the API key and the signature secrets: the environment, as the library's
//! `Secrets::from_env` reads it, or a file named on the command line (never the secret itself).

use std::path::PathBuf;

use clap::Args;
use vonage_secure_callbacks::{Secret, Secrets, API_KEY_VAR, SECRET_VAR};

use crate::Error;

#[derive(Args)]
pub struct KeyArgs {
    /// The project's API key (not a secret); default: VONAGE_API_KEY.
    #[arg(long)]
    api_key: Option<String>,
    /// A file holding the signature secret (one line); repeat it for several secrets, the
    /// first one being the current. Default: VONAGE_SIGNATURE_SECRET (and _PREVIOUS).
    #[arg(long, value_name = "FILE")]
    secret_file: Vec<PathBuf>,
    /// Accept a --secret-file shorter than 32 bytes (the SDKs' test vectors use such secrets;
    /// Vonage's own are longer).
    #[arg(long)]
    allow_short_secret: bool,
}

impl KeyArgs {
    pub fn api_key(&self) -> Result<String, Error> {
        match &self.api_key {
            Some(key) => Ok(key.clone()),
            None => std::env::var(API_KEY_VAR)
                .map_err(|_| format!("give --api-key or set {API_KEY_VAR}").into()),
        }
    }

    /// The secret to sign with: the first file, else VONAGE_SIGNATURE_SECRET.
    pub fn signing_secret(&self) -> Result<String, Error> {
        match self.secret_file.first() {
            Some(path) => read_secret(path),
            None => std::env::var(SECRET_VAR).map_err(|_| {
                format!("set {SECRET_VAR} or give --secret-file (never the secret itself)").into()
            }),
        }
    }

    /// Every secret to verify with: the files (labelled by their names), else the environment.
    pub fn secrets(&self) -> Result<Secrets, Error> {
        if self.secret_file.is_empty() {
            let secrets = match &self.api_key {
                Some(key) => Secrets::from_lookup(|var| {
                    if var == API_KEY_VAR {
                        Some(key.clone())
                    } else {
                        std::env::var(var).ok()
                    }
                }),
                None => Secrets::from_env(),
            };
            return Ok(secrets?);
        }
        let api_key = self.api_key()?;
        let mut secrets = Secrets::new();
        for path in &self.secret_file {
            let label = path.file_name().map_or_else(
                || path.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
            let text = read_secret(path)?;
            let secret = if self.allow_short_secret {
                vonage_secure_callbacks::dangerous::short_secret(text)
            } else {
                Secret::new(text)
            }
            .map_err(|err| format!("{}: {err}", path.display()))?;
            secrets = secrets.project(api_key.clone(), secret.labelled(label));
        }
        Ok(secrets)
    }
}

/// A secret file's content without the line ending an editor adds.
fn read_secret(path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}
