//! The `switchyard` binary's wiring, as a library so tests and benchmarks start the same thing.
//!
//! - [`up`]: every role in one process.
//! - [`demo`]: the built-in `demo` model.
//! - [`cli`]: argument parsing and the role subcommands.
//! - [`admin`]: the admin verbs over the control plane's admin API.
//! - [`certs`]: `certs init`, a CA and per-node certificates for mutual TLS.
//! - [`cmd`]: CLI verbs in their own modules (`usage`).

pub mod admin;
pub mod certs;
pub mod cli;
pub mod cmd;
pub mod demo;
pub mod doctor;
pub mod up;
