//! The gRPC services a control-plane voter serves.
//!
//! - [`agent`]: node agents' report streams become committed endpoint changes.
//! - [`edge`]: edges follow the versioned routing table.
//! - [`lease`]: slices of cluster-wide limits; [`usage`]: edges' usage batches.

pub mod agent;
pub mod edge;
pub mod lease;
pub mod usage;
