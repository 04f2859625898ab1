//! The gRPC services a control-plane voter serves.
//!
//! - [`agent`]: node agents' report streams become committed endpoint changes.
//!   [`coalesce`] merges what an agent sends while a commit is in flight.
//! - [`edge`]: edges follow the versioned routing table; [`table_ring`] keeps its recent deltas.
//! - [`lease`]: slices of cluster-wide limits; [`usage`]: edges' usage batches.

pub mod agent;
pub mod coalesce;
pub mod edge;
pub mod lease;
pub mod table_ring;
pub mod usage;
