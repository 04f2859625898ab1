//! Routing: the compiled table, live per-target state, and the pure choice of upstreams.

pub mod alias;
pub mod cooldown;
mod endpoint;
pub mod pick;
pub mod table;
pub mod target;

pub use pick::{Ask, Candidate, Picked, pick};
pub use table::{
    Deployment, Endpoint, EndpointKind, ModelGroup, RoutingTable, Settings, Strategy,
    UpstreamLimits,
};
pub use target::{InFlight, Target};
