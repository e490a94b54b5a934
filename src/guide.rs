//! Guides beyond the API reference, the same text as the repository's `docs/`: their examples
//! compile as this crate's doc tests, so none of them rots.

#[doc = include_str!("../docs/handlers.md")]
pub mod handlers {}

#[doc = include_str!("../docs/replay-stores.md")]
pub mod replay_stores {}

#[doc = include_str!("../docs/operations.md")]
pub mod operations {}
