//! Routing: the edge's compiled table and the pure choice of upstreams for a request.

pub mod pick;
pub mod table;

pub use pick::{Candidate, pick};
pub use table::{Deployment, ModelGroup, RoutingTable};
