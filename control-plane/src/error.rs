//! The control plane's one error type, turned into gRPC statuses at the boundary.

/// Everything that can go wrong in the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory or database file cannot be used.
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        /// The path.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The durable store failed.
    #[error("storage failed: {0}")]
    Storage(#[from] std::io::Error),
    /// Consensus failed (no quorum, shut down, bad configuration).
    #[error("consensus failed: {0}")]
    Raft(String),
    /// This voter cannot accept the write; `leader` is where to send it.
    #[error("this node is not the leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader {
        /// gRPC address of the leader, when known.
        leader: Option<String>,
    },
    /// The configuration is invalid.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The gRPC server failed.
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match &e {
            Error::NotLeader { .. } => tonic::Status::failed_precondition(e.to_string()),
            Error::Config { .. } => tonic::Status::invalid_argument(e.to_string()),
            Error::Raft(_) => tonic::Status::unavailable(e.to_string()),
            Error::DataDir { .. } | Error::Storage(_) | Error::Transport(_) => {
                tonic::Status::internal(e.to_string())
            }
        }
    }
}
