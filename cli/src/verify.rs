//! `verify`: the library's own report of a callback ([`CallbackVerifier::explain`]), one line per
//! check with the facts that point to the cause of a failure, then its verdict. Nothing here
//! checks anything: the lines are a view of the report, so they cannot contradict the verdict.

use std::path::Path;

use http::{header, HeaderMap, HeaderValue};
use vonage_secure_callbacks::{
    payload_hash, CallbackVerifier, Check, Clock, FixedClock, Rejection, Report, SystemClock,
    DEFAULT_ISSUER,
};

use crate::keys::KeyArgs;
use crate::report::{failed, print_checks, print_verdict, Line};
use crate::{read_input, Error};

pub fn run(input: &str, body_path: &Path, now: Option<u64>, key: &KeyArgs) -> Result<bool, Error> {
    let input = if input == "-" {
        String::from_utf8(read_input(Path::new("-"))?)?
    } else {
        input.to_owned()
    };
    let body = read_input(body_path)?;
    let now = now.unwrap_or_else(|| SystemClock.now());
    let verifier = CallbackVerifier::new(key.secrets()?).clock(FixedClock::new(now));
    let mut headers = HeaderMap::new();
    let authorization = format!("Bearer {}", bare_token(&input));
    // Text that cannot be a header value reaches the report as no token at all.
    if let Ok(value) = HeaderValue::from_str(&authorization) {
        headers.insert(header::AUTHORIZATION, value);
    }
    let report = verifier.explain(&headers, &body);

    print_checks(&report, |check| {
        line(check, &report, &body, verifier.limit())
    });
    Ok(print_verdict(&report, |claims| {
        format!(
            "api_key {}, jti {}, secret {}",
            claims.api_key(),
            claims.jti(),
            claims.secret()
        )
    }))
}

/// What to print for `check` of `report`.
fn line(check: Check, report: &Report, body: &[u8], limit: usize) -> Line {
    let facts = report.facts();
    let api_key = facts.api_key.as_deref().unwrap_or_default();
    let tried = facts.secrets_tried.unwrap_or_default();
    let refused = failed(report, check);
    let line = Line::new;
    match check {
        Check::BodySize => line(
            format!("{} bytes, limit {limit}", body.len()),
            format!(
                "{} bytes, over the limit of {limit}",
                facts.body_len.unwrap_or(0)
            ),
            "raise the layer's body_limit if Vonage really sends this much",
        ),
        Check::Authorization => line(
            "a Bearer token".into(),
            "no token could be read from what was given".into(),
            "paste the whole Authorization value",
        ),
        Check::Token => match refused {
            Some(Rejection::UnsupportedAlgorithm) => line(
                String::new(),
                "its alg is not HS256, the only one Vonage signs with".into(),
                "this token was not made by Vonage's callback signing",
            ),
            _ => line(
                "a JWT, alg HS256".into(),
                "not a JWT whose header and claims are base64url JSON objects with a jti, \
                     an api_key and a numeric iat"
                    .into(),
                "paste the token exactly as received, without quotes",
            ),
        },
        Check::ApiKey => line(
            format!("{api_key:?}, {tried} secret(s) configured"),
            format!(
                "{api_key:?} is not configured (configured: {:?})",
                facts.configured_api_keys
            ),
            "set VONAGE_API_KEY (or --api-key) to the project that sent it",
        ),
        Check::Signature => line(
            format!(
                "verified by secret {}",
                facts
                    .secret
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            format!("none of the {tried} secret(s) of {api_key:?} verifies it"),
            "the secret differs from the one in the Vonage dashboard (or was rotated there): \
                 compare them, and use its exact text (never hex- or base64-decoded)",
        ),
        Check::Issuer => {
            let iss = facts.issuer.as_deref().unwrap_or_default();
            line(
                format!("{iss:?}"),
                format!("{iss:?}, expected {DEFAULT_ISSUER:?}"),
                "",
            )
        }
        Check::Time => {
            let age = facts.iat_offset_secs.unwrap_or_default();
            let (skew, max) = (report.clock_skew_secs(), report.max_age_secs());
            let facts = format!("issued {age} s before now (allowed: -{skew} s to {max} s)");
            let hint = match refused {
                Some(Rejection::TokenFromFuture) => {
                    "this machine's clock is behind: check NTP (the same offset on every \
                         callback means a clock, not an attacker); or its nbf is ahead"
                }
                _ => {
                    "older than the maximum age (or past its exp): a replay, a clock far \
                         ahead, or a captured callback (give --now to check it as of when it \
                         arrived)"
                }
            };
            line(facts.clone(), facts, hint)
        }
        Check::PayloadHashClaim => line("present".into(), "the token has none".into(), ""),
        Check::PayloadHash => {
            let claimed = facts.payload_hash.as_deref().unwrap_or_default();
            let actual = facts.payload_sha256.as_deref().unwrap_or_default();
            line(
                format!("SHA-256 of the {} body bytes matches", body.len()),
                format!(
                    "the token signs {claimed}, the {} body bytes hash to {actual}",
                    body.len()
                ),
                &why_the_body_differs(body, claimed),
            )
        }
        _ => Line::default(),
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

/// What commonly changes a body on its way, tested against the claimed hash: a hint, not a
/// check (the verdict is already decided).
fn why_the_body_differs(body: &[u8], claimed: &str) -> String {
    let claimed = claimed.to_ascii_lowercase();
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
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
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
