//! Sign callbacks the way Vonage does, to test your own handlers, and the attacks a protected
//! endpoint must refuse, to test your own deployment (feature `test-util`).
//!
//! ```
//! use vonage_secure_callbacks::test_util::CallbackSigner;
//! use vonage_secure_callbacks::{CallbackVerifier, Secret, Secrets};
//!
//! let secret = "a-signature-secret-of-32-bytes-or-more";
//! let signer = CallbackSigner::new("a1b2c3d", secret);
//! let body = br#"{"sessionId":"1_MX4","event":"connectionCreated"}"#;
//! let authorization = signer.authorization(body);
//!
//! let verifier = CallbackVerifier::new(
//!     Secrets::new().project("a1b2c3d", Secret::new(secret).unwrap()),
//! );
//! let claims = verifier.verify_authorization(&authorization, body).unwrap();
//! assert_eq!(claims.api_key(), "a1b2c3d");
//! ```

mod attacks;
mod send;
mod signer;
#[cfg(feature = "sms")]
mod sms_attacks;

pub use attacks::{jwt_attacks, Attack, Expected};
pub use signer::{fresh_jti, CallbackSigner, VONAGE_HEADER};
#[cfg(feature = "sms")]
pub use sms_attacks::sms_attacks;
