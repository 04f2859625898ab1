//! Switchyard's gRPC wire contract: generated types and services of package `switchyard.v1`,
//! and the mutual-TLS settings every gRPC link shares ([`tls`]).

pub mod tls;

/// Package `switchyard.v1`: agent, edge and raft services and their messages.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
    tonic::include_proto!("switchyard.v1");
}
