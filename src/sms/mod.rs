//! The SMS API's signed requests (feature `sms`): inbound messages and delivery receipts carry
//! a `sig` parameter instead of a JWT. Verify them with an [`SmsVerifier`] and put
//! [`SecureCallbackLayer::sms`](crate::SecureCallbackLayer::sms) in front of your SMS routes:
//! the same state machine, rejections and replay stores as the JWT scheme.
//!
//! The signed string is every parameter but `sig`, sorted by name, each written `&name=value`
//! with `&` and `=` inside a value replaced by `_` ([`signed_string`]); the method is the
//! account's setting ([`SignatureMethod`]), configured, never guessed.
//!
//! Where the SDKs disagree, this follows the signing guide and the majority (PHP, Node, Python,
//! Ruby): `&` and `=` are replaced in values only, not in names (Java and .NET replace them in
//! names too); a parameter with an empty value is signed like any other (Java drops blank
//! values); names are sorted by their bytes. The `timestamp` is checked (only Java does, at
//! ±5 min): within [`DEFAULT_SMS_MAX_AGE`] behind and 5 min ahead, so that Vonage's own retries
//! pass and a stale capture does not.
//!
//! The scheme has a blind spot of its own: `&`, `=` and `_` inside a value are signed alike,
//! so a value changed among those three keeps its signature. Only the transport (TLS) protects
//! it; [`test_util::sms_attacks`](crate::test_util) lists it among the accepted cases.

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
