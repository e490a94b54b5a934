//! The integration tests, as one binary (one link of tokio, hyper, axum and the crypto backend
//! instead of one per file): whole servers on loopback, real Redis servers, the examples as a
//! newcomer runs them. Four stay binaries of their own, because they observe the whole process:
//! `allocations.rs` installs a counting global allocator, `resources.rs` measures peak memory,
//! `hygiene.rs` captures tracing output (tracing caches callsite interest process-wide, so
//! capturing beside other tests' events can miss some), and `metrics.rs` installs the process's
//! metrics recorder.

mod common;

mod attacks;
mod chaos;
mod events;
mod exactly_once;
mod example_server;
mod fuzz_regressions;
mod grpc;
mod module_graph;
mod postgres_store;
mod properties;
mod redis_deploy;
mod redis_faults;
mod redis_store;
mod rejections;
mod replay;
mod sms_events;
mod sms_server;
mod sms_vectors;
mod sqlite_store;
mod stacks;
mod vectors;
mod webhooks;
