//! The irreducible verification of one callback, hand-written from `hmac`, `sha2`, `base64` and
//! `serde_json`: the yardstick of the `verify` bench and of the load tool's server CPU mode.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Deserialize)]
struct RefHeader<'a> {
    alg: &'a str,
}

#[derive(Deserialize)]
struct RefClaims<'a> {
    iat: u64,
    #[serde(borrow)]
    jti: &'a str,
    iss: &'a str,
    payload_hash: &'a str,
    api_key: &'a str,
}

/// The irreducible work, hand-written: decode, one HMAC, parse the claims (borrowed), hash the
/// body, compare. No tower, no replay store, one fixed secret; `now` for the age check.
pub fn reference(token: &str, body: &[u8], secret: &[u8], now: u64) -> bool {
    let Some((signing_input, sig_b64)) = token.rsplit_once('.') else {
        return false;
    };
    let Some((h, p)) = signing_input.split_once('.') else {
        return false;
    };
    let mut hbuf = [0u8; 64];
    let Ok(hn) = URL_SAFE_NO_PAD.decode_slice(h, &mut hbuf) else {
        return false;
    };
    let Ok(header) = serde_json::from_slice::<RefHeader<'_>>(&hbuf[..hn]) else {
        return false;
    };
    if header.alg != "HS256" {
        return false;
    }
    let Ok(payload) = URL_SAFE_NO_PAD.decode(p) else {
        return false;
    };
    let Ok(claims) = serde_json::from_slice::<RefClaims<'_>>(&payload) else {
        return false;
    };
    let mut sig = [0u8; 33];
    if URL_SAFE_NO_PAD.decode_slice(sig_b64, &mut sig) != Ok(32) {
        return false;
    }
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    if mac.verify_slice(&sig[..32]).is_err() {
        return false;
    }
    if claims.iss != "Vonage" || claims.iat + 86_400 < now || claims.api_key.is_empty() {
        return false;
    }
    let mut expected = [0u8; 32];
    let hex = claims.payload_hash.as_bytes();
    if hex.len() != 64 {
        return false;
    }
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let Ok(s) = std::str::from_utf8(pair) else {
            return false;
        };
        let Ok(b) = u8::from_str_radix(s, 16) else {
            return false;
        };
        expected[i] = b;
    }
    let _ = claims.jti;
    Sha256::digest(body).as_slice().ct_eq(&expected).into()
}
