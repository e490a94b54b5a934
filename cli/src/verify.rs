//! `verify`: every check the layer makes, one line each, with the facts that point to the cause
//! of a failure; then the library's own verdict, which the checklist must agree with.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use vonage_secure_callbacks::dangerous::verify_signature;
use vonage_secure_callbacks::test_util::payload_hash;
use vonage_secure_callbacks::{
    CallbackVerifier, Clock, FixedClock, Rejection, Secrets, SystemClock, DEFAULT_CLOCK_SKEW,
    DEFAULT_ISSUER, DEFAULT_MAX_AGE,
};

use crate::keys::KeyArgs;
use crate::{read_input, Error};

/// The checklist being printed; remembers the first failure.
#[derive(Default)]
struct Checklist {
    first_failure: Option<Rejection>,
}

impl Checklist {
    fn pass(&self, what: &str, facts: &str) {
        println!("  ok    {what}: {facts}");
    }

    fn fail(&mut self, rejection: Rejection, what: &str, facts: &str, hint: &str) {
        println!("  FAIL  {what}: {facts}");
        if !hint.is_empty() {
            println!("        -> {hint}");
        }
        self.first_failure.get_or_insert(rejection);
    }

    fn skip(&self, what: &str, why: &str) {
        println!("  --    {what}: {why}");
    }
}

pub fn run(input: &str, body_path: &Path, now: Option<u64>, key: &KeyArgs) -> Result<bool, Error> {
    let input = if input == "-" {
        String::from_utf8(read_input(Path::new("-"))?)?
    } else {
        input.to_owned()
    };
    let token = bare_token(&input);
    let body = read_input(body_path)?;
    let secrets = key.secrets()?;
    let now = now.unwrap_or_else(|| SystemClock.now());

    println!("checks:");
    let mut list = Checklist::default();
    check(&mut list, token, &secrets, now, &body);
    let verdict = CallbackVerifier::new(secrets)
        .clock(FixedClock::new(now))
        .verify_token(token, &body);
    list.skip(
        "replay",
        "not checked here (the layer's replay store decides)",
    );
    match verdict {
        Ok(claims) => {
            println!(
                "verdict: accepted (api_key {}, jti {}, secret {})",
                claims.api_key(),
                claims.jti(),
                claims.secret()
            );
            Ok(true)
        }
        Err(rejection) => {
            println!(
                "verdict: refused: {} ({})",
                rejection.code(),
                rejection.status()
            );
            if list.first_failure != Some(rejection) {
                // The checklist mirrors the library; if they ever disagree, say so loudly.
                println!(
                    "note: the first failed check above ({}) is not the library's reason",
                    list.first_failure.map_or("none", Rejection::code)
                );
            }
            Ok(false)
        }
    }
}

/// The token out of `Authorization: Bearer <token>`, `Bearer <token>` or `<token>`.
fn bare_token(input: &str) -> &str {
    let mut rest = input.trim();
    if let Some((name, value)) = rest.split_once(':') {
        if name.trim().eq_ignore_ascii_case("authorization") {
            rest = value.trim();
        }
    }
    match rest.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => rest,
    }
}

/// Runs the checks in the layer's order, going on after a failure where a later check still
/// tells something (a payload hash mismatch beside a bad signature, say).
fn check(list: &mut Checklist, token: &str, secrets: &Secrets, now: u64, body: &[u8]) {
    let segments: Vec<&str> = token.split('.').collect();
    let decode = |segment: &str| -> Option<Map<String, Value>> {
        let json = URL_SAFE_NO_PAD.decode(segment).ok()?;
        serde_json::from_slice(&json).ok()
    };
    let (header, claims) = match segments.as_slice() {
        [h, c, _] => match (decode(h), decode(c)) {
            (Some(header), Some(claims)) => (header, claims),
            _ => {
                list.fail(
                    Rejection::MalformedToken,
                    "token",
                    "its header or claims are not base64url JSON objects",
                    "paste the token exactly as received, without quotes",
                );
                return;
            }
        },
        _ => {
            list.fail(
                Rejection::MalformedToken,
                "token",
                &format!("{} dot-separated parts, a JWT has 3", segments.len()),
                "paste the whole Authorization value",
            );
            return;
        }
    };
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg == "HS256" {
        list.pass("token", "a JWT, alg HS256");
    } else {
        list.fail(
            Rejection::UnsupportedAlgorithm,
            "token",
            &format!("alg {alg:?}; Vonage signs with HS256 only"),
            "this token was not made by Vonage's callback signing",
        );
        return;
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    if text("jti").is_none_or(|jti| jti.is_empty()) {
        list.fail(
            Rejection::MalformedToken,
            "token",
            "no jti claim",
            "Vonage gives every callback a jti",
        );
        return;
    }

    let api_key = text("api_key").unwrap_or_default();
    let configured = secrets.secrets_for(&api_key);
    let mut keys: Vec<&str> = secrets.api_keys().collect();
    keys.sort_unstable();
    if configured.is_empty() {
        list.fail(
            Rejection::UnknownApiKey,
            "api_key",
            &format!("{api_key:?} is not configured (configured: {keys:?})"),
            "set VONAGE_API_KEY (or --api-key) to the project that sent it",
        );
        return;
    }
    list.pass(
        "api_key",
        &format!("{api_key:?}, {} secret(s) configured", configured.len()),
    );

    let verified = configured
        .iter()
        .position(|secret| verify_signature(token, secret).is_ok());
    // After a bad signature the claims below are what an unverified token says.
    let unverified = if verified.is_some() {
        ""
    } else {
        " (unverified claim)"
    };
    match verified {
        Some(i) => {
            let label = configured[i].label().map_or(format!("#{i}"), str::to_owned);
            list.pass("signature", &format!("verified by secret {label}"));
        }
        None => list.fail(
            Rejection::BadSignature,
            "signature",
            &format!(
                "none of the {} secret(s) of {api_key:?} verifies it",
                configured.len()
            ),
            "the secret differs from the one in the Vonage dashboard (or was rotated there): \
             compare them, and use its exact text (never hex- or base64-decoded)",
        ),
    }

    let iss = text("iss").unwrap_or_default();
    if iss == DEFAULT_ISSUER {
        list.pass("issuer", &format!("{iss:?}{unverified}"));
    } else {
        list.fail(
            Rejection::BadIssuer,
            "issuer",
            &format!("{iss:?}, expected {DEFAULT_ISSUER:?}"),
            "",
        );
    }

    match claims.get("iat").and_then(Value::as_u64) {
        None => list.fail(
            Rejection::MalformedToken,
            "time",
            "no numeric iat claim",
            "",
        ),
        Some(iat) => {
            let age = now as i64 - iat as i64;
            let (skew, max) = (DEFAULT_CLOCK_SKEW.as_secs(), DEFAULT_MAX_AGE.as_secs());
            let facts =
                format!("issued {age} s before now (allowed: -{skew} s to {max} s){unverified}");
            if iat > now.saturating_add(skew) {
                list.fail(
                    Rejection::TokenFromFuture,
                    "time",
                    &facts,
                    "this machine's clock is behind: check NTP (the same offset on every \
                     callback means a clock, not an attacker)",
                );
            } else if now > iat.saturating_add(max) {
                list.fail(
                    Rejection::StaleToken,
                    "time",
                    &facts,
                    "older than a day: a replay, a clock far ahead, or a captured callback \
                     (give --now to check it as of when it arrived)",
                );
            } else {
                list.pass("time", &facts);
            }
        }
    }

    let actual = payload_hash(body);
    match text("payload_hash") {
        None => list.fail(
            Rejection::MissingPayloadHash,
            "payload_hash",
            "the token has none",
            "",
        ),
        Some(claimed) if claimed == actual => list.pass(
            "payload_hash",
            &format!(
                "SHA-256 of the {} body bytes matches{unverified}",
                body.len()
            ),
        ),
        Some(claimed) => list.fail(
            Rejection::PayloadHashMismatch,
            "payload_hash",
            &format!(
                "the token signs {claimed}, the {} body bytes hash to {actual}",
                body.len()
            ),
            &why_the_body_differs(body, &claimed),
        ),
    }
}

/// What commonly changes a body on its way, tested against the claimed hash.
fn why_the_body_differs(body: &[u8], claimed: &str) -> String {
    if body.starts_with(&[0x1f, 0x8b]) {
        return "the body is gzip-compressed: something compressed it after Vonage signed it \
                (hash what arrived, before any decompression or re-encoding)"
            .into();
    }
    let trimmed = body
        .strip_suffix(b"\n")
        .map(|b| b.strip_suffix(b"\r").unwrap_or(b));
    if trimmed.is_some_and(|t| payload_hash(t) == claimed) {
        return "the body without its final newline matches: the file gained a line ending \
                (an editor, or echo without -n)"
            .into();
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Ok(compact) = serde_json::to_vec(&value) {
            if payload_hash(&compact) == claimed {
                return "the body re-serialised compactly matches: it was parsed and written \
                        again (whitespace changed); hash the raw bytes as received"
                    .into();
            }
        }
        return "the body is JSON but not the bytes that were signed: it was re-serialised, \
                re-encoded (charset) or edited on its way; hash the raw bytes as received"
            .into();
    }
    "the body is not the bytes that were signed: check proxies that rewrite bodies".into()
}

#[cfg(test)]
mod tests {
    use super::bare_token;

    #[test]
    fn takes_the_token_out_of_what_users_paste() {
        for input in [
            "t.o.k",
            "Bearer t.o.k",
            "Authorization: Bearer t.o.k\n",
            "bearer  t.o.k",
        ] {
            assert_eq!(bare_token(input), "t.o.k", "{input:?}");
        }
    }
}
