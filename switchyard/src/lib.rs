//! The `switchyard` binary's wiring, as a library so tests and benchmarks start the same thing.
//!
//! - [`up`]: every role in one process.
//! - [`demo`]: the built-in `demo` model.
//! - [`cli`]: the top-level argument parser.
//! - [`logs`]: the log subscriber every role shares (stderr, colour only on a terminal).
//! - [`cmd`]: the subcommands, one module each (roles, admin verbs, `doctor`, `certs`).

pub mod cli;
pub mod cmd;
pub mod demo;
pub mod logs;
pub mod up;
