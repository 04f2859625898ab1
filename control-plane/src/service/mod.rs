//! The gRPC services a control-plane voter serves.
//!
//! - [`agent`]: node agents' report streams become committed endpoint changes.
//! - [`edge`]: edges follow the versioned routing table.

pub mod agent;
pub mod edge;
pub mod lease;
