//! The SMS API's signed requests (feature `sms`): inbound messages and delivery receipts carry
//! a `sig` parameter instead of a JWT. Verify them with an [`SmsVerifier`] and put
//! [`SecureCallbackLayer::sms`](crate::SecureCallbackLayer::sms) in front of your SMS routes:
//! the same state machine, rejections and replay stores as the JWT scheme.
//!
//! The signed string is every parameter but `sig`, sorted by name, each written `&name=value`
//! with `&` and `=` inside a value replaced by `_` ([`signed_string`]); the method is the
//! account's setting ([`SignatureMethod`]), configured, never guessed.

#[cfg(feature = "events")]
mod event;
mod params;
mod signature;
mod verify;

#[cfg(feature = "events")]
pub use event::{ConcatPart, DeliveryReceipt, InboundSms, MessageType, ReceiptStatus, SmsEvent};
pub use params::{ParamsError, SmsParams};
pub use signature::{signed_string, SignatureMethod, UnknownMethod};
pub use verify::{SmsVerifier, VerifiedSms, DEFAULT_SMS_MAX_AGE};
