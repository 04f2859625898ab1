//! The `switchyard` binary's wiring, as a library so tests and benchmarks start the same thing.
//!
//! - [`up`]: every role in one process.
//! - [`demo`]: the built-in `demo` model.
//! - [`cli`]: argument parsing and the role subcommands.
//! - [`admin`]: the admin verbs over the control plane's admin API.

pub mod admin;
pub mod cli;
pub mod demo;
pub mod doctor;
pub mod up;
