//! The repository's examples (`cargo run --example callback_server`), as a crate of their own
//! so that building one compiles only what the examples use. Nothing here: each example is a
//! program of its own beside this file.
