//! Switchyard's control plane: the replicated source of truth for endpoints, models and nodes.
//!
//! - [`state`]: the pure `ClusterState::apply(Command) -> Outcome`.
//! - [`catalog`]: listing declared endpoints' models, filters, chains that name nothing.
//! - [`table`]: compiles the state into the edge-ready routing table.
//! - [`raft`]: openraft over a durable redb log and state machine (the only openraft user),
//!   behind `Consensus`, which can instead run on [`etcd`] (feature `etcd`).
//! - [`service`]: the gRPC services voters serve (agent, edge, raft, health).
//! - [`config`]: `config.yaml` (ours or LiteLLM's) and `LLM_PROXY_ENDPOINT_*` variables.
//! - [`reload`]: applying the declared sources at start and on reload.
//! - [`admin`]: the admin REST API, its client and Prometheus metrics.
//! - [`liveness`]: heartbeats in leader memory; silent nodes committed as down.
//! - [`seal`]: the cluster key, client-key generation and hashing.
//! - [`server`]: starts a voter on bound listeners.

pub mod admin;
pub mod catalog;
pub mod config;
mod crypto;
pub mod error;
pub mod etcd;
pub mod health;
pub mod lease;
pub mod liveness;
pub mod raft;
pub mod reload;
pub mod seal;
pub mod server;
pub mod service;
pub mod state;
pub mod table;

pub use error::Error;
pub use server::{Config, ControlPlane};
