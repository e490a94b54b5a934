//! HS256 verifiers keyed once per secret and thread. jsonwebtoken's provider keys an HMAC (two
//! SHA-256 blocks) and boxes a verifier on every call, and its verifiers are neither `Send` nor
//! `Sync`, so they cannot live in the shared [`Secret`]: each thread keeps the few it used last.
//! Same backend, same constant-time compare; a third of the signature check's work and two
//! allocations per callback less.

use std::cell::RefCell;

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::Algorithm;

use crate::secrets::Secret;

/// The crypto backend, named explicitly so that jsonwebtoken's process-wide default (which panics
/// when both or neither of its backends are compiled in) is never consulted.
#[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
pub(crate) static PROVIDER: &CryptoProvider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
#[cfg(feature = "aws_lc_rs")]
pub(crate) static PROVIDER: &CryptoProvider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;

/// Verifiers kept per thread; a deployment has one or two secrets per project, and a thread
/// that sees more re-keys the least recently used.
const PER_THREAD: usize = 8;

#[derive(Default)]
struct Keyed {
    /// Most recently used last; keyed by [`Secret::id`], which its clones share.
    verifiers: Vec<(u64, Box<dyn JwtVerifier>)>,
    /// jsonwebtoken takes the signature as `&Vec<u8>`: one buffer per thread, reused.
    signature: Vec<u8>,
}

thread_local! {
    static KEYED: RefCell<Keyed> = RefCell::new(Keyed::default());
}

/// True when `signature` is the HMAC-SHA256 of `signing_input` under `secret`.
pub(crate) fn verify(secret: &Secret, signing_input: &[u8], signature: &[u8]) -> bool {
    // The thread's cache is only unavailable while the thread is being torn down: key afresh.
    let cached = KEYED.try_with(|keyed| {
        let mut keyed = keyed.try_borrow_mut().ok()?;
        let Keyed {
            verifiers,
            signature: buffer,
        } = &mut *keyed;
        // Moved (or added) to the end, so that the front is always the least recently used.
        let entry = match verifiers.iter().rposition(|(id, _)| *id == secret.id()) {
            Some(i) => verifiers.remove(i),
            None => {
                if verifiers.len() == PER_THREAD {
                    verifiers.remove(0);
                }
                (secret.id(), new_verifier(secret)?)
            }
        };
        buffer.clear();
        buffer.extend_from_slice(signature);
        let valid = entry.1.verify(signing_input, buffer).is_ok();
        verifiers.push(entry);
        Some(valid)
    });
    match cached {
        Ok(Some(valid)) => valid,
        _ => new_verifier(secret)
            .is_some_and(|v| v.verify(signing_input, &signature.to_vec()).is_ok()),
    }
}

fn new_verifier(secret: &Secret) -> Option<Box<dyn JwtVerifier>> {
    (PROVIDER.verifier_factory)(&Algorithm::HS256, secret.key()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::CallbackSigner;

    fn parts(token: &str) -> (&str, Vec<u8>) {
        use base64::Engine;
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap();
        (input, sig)
    }

    #[test]
    fn each_secret_keeps_its_own_key_beyond_the_cache_size() {
        let secrets: Vec<Secret> = (0..PER_THREAD + 3)
            .map(|i| Secret::new(format!("keyed-cache-test-secret-{i:04}-0000000000")).unwrap())
            .collect();
        // Twice round, so that every secret is evicted and keyed again in between.
        for _ in 0..2 {
            for (i, secret) in secrets.iter().enumerate() {
                let token =
                    CallbackSigner::new("k", format!("keyed-cache-test-secret-{i:04}-0000000000"))
                        .token(b"{}");
                let (input, sig) = parts(&token);
                assert!(verify(secret, input.as_bytes(), &sig), "secret {i}");
                let other = &secrets[(i + 1) % secrets.len()];
                assert!(
                    !verify(other, input.as_bytes(), &sig),
                    "secret {i} under another"
                );
                let mut flipped = sig.clone();
                flipped[31] ^= 1;
                assert!(!verify(secret, input.as_bytes(), &flipped));
            }
        }
        let size = KEYED.with(|k| k.borrow().verifiers.len());
        assert_eq!(size, PER_THREAD);
    }

    #[test]
    fn a_clone_shares_the_key_and_a_new_secret_of_the_same_text_does_not() {
        let text = "keyed-cache-test-one-secret-text-000000";
        let (a, b) = (Secret::new(text).unwrap(), Secret::new(text).unwrap());
        assert_eq!(a.id(), a.clone().id());
        assert_ne!(a.id(), b.id());
    }
}
