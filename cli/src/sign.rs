//! `sign`: a token for a body, or a curl command that POSTs the body with it.

use std::path::Path;

use vonage_secure_callbacks::test_util::CallbackSigner;

use crate::keys::KeyArgs;
use crate::{read_input, Error};

pub fn run(
    body_path: &Path,
    curl: Option<&str>,
    iat: Option<u64>,
    key: &KeyArgs,
) -> Result<bool, Error> {
    let body = read_input(body_path)?;
    let signer = CallbackSigner::new(key.api_key()?, key.signing_secret()?);
    let token = signer.token_with(&body, |claims| {
        if let Some(iat) = iat {
            claims.insert("iat".into(), iat.into());
        }
    });
    match curl {
        None => println!("{token}"),
        Some(url) => {
            let data = if body_path.as_os_str() == "-" {
                let text = std::str::from_utf8(&body)
                    .map_err(|_| "a binary body needs a file (--body FILE) for curl to send")?;
                shell_quote(text)
            } else {
                format!("@{}", shell_quote(&body_path.display().to_string()))
            };
            println!(
                "curl -sS -X POST {} -H 'Content-Type: application/json' -H 'Authorization: Bearer {token}' --data-binary {data}",
                shell_quote(url)
            );
        }
    }
    Ok(true)
}

/// `text` as one POSIX shell word.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_survive_the_shell() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("{}"), "'{}'");
    }
}
