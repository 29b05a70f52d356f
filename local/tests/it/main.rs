//! webchat-local's integration tests, one binary: each module a part of the gateway as
//! clients meet it, over real sockets. One binary links axum and the AWS SDK once
//! instead of once per file.
//!
//! The full-size load runs are ignored here; `cargo xtask test` runs them in the
//! `load-test` profile (`cargo test --profile load-test -p webchat-local --test it --
//! load:: --ignored`).

mod common;

mod auth;
mod backpressure;
mod fanout;
mod faults;
mod gateway;
mod hostile;
mod iam;
mod load;
mod management_auth;
mod metrics;
mod presence;
mod rate_limit;
mod rejoin;
mod static_ui;
mod template;
mod template_breakage;
mod template_sqs;

// As in the `webchat-local` binary (src/main.rs says why): the gateway runs in this
// process here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
