//! Subcommands with a module of their own (as mini-redis's `cmd/`).
//!
//! - [`top`] (feature `top`): the live terminal view of the cluster.

#[cfg(feature = "top")]
pub mod top;
