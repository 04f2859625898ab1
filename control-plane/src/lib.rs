//! Switchyard's control plane: the replicated source of truth for endpoints, models and nodes.
//!
//! - [`state`]: the pure `ClusterState::apply(Command) -> Outcome`.
//! - [`table`]: compiles the state into the edge-ready routing table.
//! - [`raft`]: openraft over a durable redb log and state machine (the only openraft user).
//! - [`service`]: the gRPC services voters serve (agent, edge, raft, health).
//! - [`server`]: starts a voter on a bound listener.

pub mod error;
pub mod raft;
pub mod server;
pub mod service;
pub mod state;
pub mod table;

pub use error::Error;
pub use server::{Config, ControlPlane};
