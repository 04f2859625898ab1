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
    /// Sealing or opening a secret failed.
    #[error("crypto failed: {0}")]
    Crypto(String),
    /// The state refused the change (validation, precedence).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The named thing does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// No valid admin token was presented.
    #[error("missing or unknown admin token")]
    Unauthorized,
    /// The token may read but not write.
    #[error("this token is read-only")]
    Forbidden,
    /// A config file cannot be read or honoured.
    #[error("config file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What is wrong, naming the offending field.
        reason: String,
    },
    /// The admin API answered with an error.
    #[error("admin API answered {status}: {message}")]
    Admin {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The etcd backend failed.
    #[error("etcd failed: {0}")]
    Etcd(String),
    /// The gRPC server failed.
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match &e {
            Error::NotLeader { .. } => tonic::Status::failed_precondition(e.to_string()),
            Error::Config { .. }
            | Error::ConfigFile { .. }
            | Error::Rejected(_)
            | Error::BadRequest(_) => tonic::Status::invalid_argument(e.to_string()),
            Error::NotFound { .. } => tonic::Status::not_found(e.to_string()),
            Error::Unauthorized => tonic::Status::unauthenticated(e.to_string()),
            Error::Forbidden => tonic::Status::permission_denied(e.to_string()),
            Error::Etcd(_) => tonic::Status::unavailable(e.to_string()),
            Error::Raft(_) => tonic::Status::unavailable(e.to_string()),
            Error::DataDir { .. }
            | Error::Storage(_)
            | Error::Transport(_)
            | Error::Crypto(_)
            | Error::Admin { .. } => tonic::Status::internal(e.to_string()),
        }
    }
}
