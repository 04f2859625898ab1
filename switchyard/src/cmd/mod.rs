//! One module per CLI verb that is more than a call to the admin API.
//!
//! - [`catalog`]: `switchyard catalog [list|refresh]`, what declared endpoints list and serve.

pub mod catalog;
