//! CLI verbs, one module each.
//!
//! - [`usage`]: `switchyard usage`, usage and spend from the admin API.

pub mod usage;
