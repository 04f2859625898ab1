//! Discovery: where backends are found and how scans become reports.
//!
//! - [`local`]: scans of the configured targets, backend ids, and the [`local::Tracker`] that
//!   turns successive scans into upserts and removals.

pub mod local;
