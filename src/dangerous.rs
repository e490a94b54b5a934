//! Options that weaken a defence. Each is a deliberate, greppable choice; none is needed to
//! receive Vonage's callbacks.

use crate::replay::{Attempt, Lease, Lookup, Outcome, ReplayStore, ReplayStoreError, Reservation};
use crate::secrets::{Secret, SecretError};
use crate::verify::CallbackVerifier;
use std::future::{ready, Ready};

pub use crate::token::verify_signature;

/// Accepts a secret of any non-empty length. Vonage's signature secrets are longer than 32
/// bytes; a shorter one is open to brute force.
///
/// ```
/// let s = vonage_secure_callbacks::dangerous::short_secret("short").unwrap();
/// assert!(vonage_secure_callbacks::dangerous::short_secret("").is_err());
/// # let _ = s;
/// ```
pub fn short_secret(secret: impl AsRef<[u8]>) -> Result<Secret, SecretError> {
    Secret::new_unchecked(secret.as_ref())
}

/// Stops comparing the body with `payload_hash`: the signature then covers the claims only, and
/// anyone who captured one token can attach any body to it. A `payload_hash` may then be absent.
///
/// ```
/// use vonage_secure_callbacks::{dangerous, CallbackVerifier, SecureCallbackLayer, Secrets};
/// let verifier = dangerous::skip_payload_hash_check(CallbackVerifier::new(Secrets::new()));
/// let layer = SecureCallbackLayer::new(verifier);
/// ```
pub fn skip_payload_hash_check(verifier: CallbackVerifier) -> CallbackVerifier {
    verifier.skip_payload_hash_check()
}

/// A replay store that remembers nothing: a captured callback can be replayed until it is stale.
///
/// ```
/// use vonage_secure_callbacks::{dangerous::NoReplayStore, SecureCallbackLayer, Secrets};
/// let layer = SecureCallbackLayer::new(Secrets::new()).replay_store(NoReplayStore);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplayStore;

impl ReplayStore for NoReplayStore {
    type LookupFuture = Ready<Result<Lookup, ReplayStoreError>>;
    type ReserveFuture = Ready<Result<Reservation, ReplayStoreError>>;
    type SettleFuture = Ready<Result<(), ReplayStoreError>>;

    fn lookup(&self, _attempt: &Attempt) -> Self::LookupFuture {
        ready(Ok(Lookup::Unknown))
    }

    fn reserve(&self, attempt: Attempt) -> Self::ReserveFuture {
        ready(Ok(Reservation::Reserved(Lease::new(attempt))))
    }

    fn settle(&self, _lease: &Lease, _outcome: Outcome) -> Self::SettleFuture {
        ready(Ok(()))
    }
}
