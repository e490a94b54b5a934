//! The `sig` of an SMS API request: the signed string, and its hash or HMAC under the secret.

use std::fmt;
use std::str::FromStr;

use hmac::{KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::params::SmsParams;

/// How the account signs its SMS requests (Dashboard → Settings → "Signature method"). The
/// verifier is told which: it never guesses it from the signature's length, which would let a
/// forger pick the weakest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureMethod {
    /// `md5hash`: hex MD5 of the signed string followed by the secret (Vonage's oldest method).
    Md5Hash,
    /// `md5`: hex HMAC-MD5 of the signed string, keyed with the secret.
    HmacMd5,
    /// `sha1`: hex HMAC-SHA1.
    HmacSha1,
    /// `sha256`: hex HMAC-SHA256.
    HmacSha256,
    /// `sha512`: hex HMAC-SHA512.
    HmacSha512,
}

impl SignatureMethod {
    /// Every method.
    pub const ALL: [SignatureMethod; 5] = [
        SignatureMethod::Md5Hash,
        SignatureMethod::HmacMd5,
        SignatureMethod::HmacSha1,
        SignatureMethod::HmacSha256,
        SignatureMethod::HmacSha512,
    ];

    /// The name Vonage's dashboard and SDKs use: `md5hash`, `md5`, `sha1`, `sha256`, `sha512`.
    pub const fn name(self) -> &'static str {
        match self {
            SignatureMethod::Md5Hash => "md5hash",
            SignatureMethod::HmacMd5 => "md5",
            SignatureMethod::HmacSha1 => "sha1",
            SignatureMethod::HmacSha256 => "sha256",
            SignatureMethod::HmacSha512 => "sha512",
        }
    }

    /// The signature's raw digest of `signed` under `secret`.
    fn digest(self, signed: &[u8], secret: &[u8]) -> Vec<u8> {
        fn hmac<M: Mac + KeyInit>(signed: &[u8], secret: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length.
            let mut mac = <M as KeyInit>::new_from_slice(secret).expect("HMAC accepts any key");
            mac.update(signed);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            SignatureMethod::Md5Hash => {
                let mut md5 = Md5::new();
                md5.update(signed);
                md5.update(secret);
                md5.finalize().to_vec()
            }
            SignatureMethod::HmacMd5 => hmac::<hmac::Hmac<Md5>>(signed, secret),
            SignatureMethod::HmacSha1 => hmac::<hmac::Hmac<Sha1>>(signed, secret),
            SignatureMethod::HmacSha256 => hmac::<hmac::Hmac<Sha256>>(signed, secret),
            SignatureMethod::HmacSha512 => hmac::<hmac::Hmac<Sha512>>(signed, secret),
        }
    }

    /// The lowercase hex `sig` of `params` under `secret`.
    pub fn sign(self, params: &SmsParams, secret: &[u8]) -> String {
        crate::hex::encode(&self.digest(signed_string(params).as_bytes(), secret))
    }

    /// True when `sig` (hex of either case: SDKs write both) is the signature of `params` under
    /// `secret`, compared in constant time.
    pub(crate) fn verifies(self, params: &SmsParams, secret: &[u8], sig: &str) -> bool {
        let expected = self.digest(signed_string(params).as_bytes(), secret);
        // The longest digest, SHA-512's; a longer sig fails to decode.
        let mut given = [0u8; 64];
        let Some(len) = crate::hex::decode_into(sig, &mut given) else {
            return false;
        };
        // Lengths are public (they follow from the method); the bytes are compared in
        // constant time.
        len == expected.len() && bool::from(given[..len].ct_eq(&expected))
    }
}

impl fmt::Display for SignatureMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of Vonage's signature methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMethod(pub String);

impl fmt::Display for UnknownMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a signature method: use md5hash, md5, sha1, sha256 or sha512",
            self.0
        )
    }
}

impl std::error::Error for UnknownMethod {}

impl FromStr for SignatureMethod {
    type Err = UnknownMethod;

    /// The dashboard's names, in any case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownMethod(name.to_owned()))
    }
}

/// The string Vonage signs: every parameter but `sig`, sorted by name (byte order), each written
/// `&name=value`, with `&` and `=` inside a value replaced by `_`. Names are written as they
/// are: the majority of the SDKs (PHP, Node, Python, Ruby) and the signing guide replace only in
/// values.
pub fn signed_string(params: &SmsParams) -> String {
    let mut pairs: Vec<(&str, &str)> = params.iter().filter(|(name, _)| *name != "sig").collect();
    pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::with_capacity(pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
    for (name, value) in pairs {
        out.push('&');
        out.push_str(name);
        out.push('=');
        out.extend(
            value
                .chars()
                .map(|c| if c == '&' || c == '=' { '_' } else { c }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_string_sorts_names_and_masks_separators_in_values() {
        let params = SmsParams::from_pairs([("b", "x&y=z"), ("a", "1"), ("sig", "ignored")]);
        assert_eq!(signed_string(&params), "&a=1&b=x_y_z");
    }

    #[test]
    fn names_parse_in_any_case_and_others_are_refused() {
        assert_eq!("SHA256".parse(), Ok(SignatureMethod::HmacSha256));
        assert_eq!("md5hash".parse(), Ok(SignatureMethod::Md5Hash));
        assert!("sha384".parse::<SignatureMethod>().is_err());
        for m in SignatureMethod::ALL {
            assert_eq!(m.name().parse(), Ok(m));
        }
    }
}
