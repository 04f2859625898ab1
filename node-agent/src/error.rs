//! The node agent's one error enum.

use std::time::Duration;

/// Everything that can go wrong in the node agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config field holds a value the agent cannot use.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig {
        /// Name of the offending field, as written in the config file.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The HTTP client used for probes could not be built.
    #[error("cannot build the probe HTTP client")]
    HttpClient(#[source] reqwest::Error),

    /// A probe request failed before a response arrived (refused, timed out, reset).
    #[error("probe of {url} failed")]
    ProbeRequest {
        /// URL that was probed.
        url: String,
        /// Underlying transport error.
        #[source]
        source: reqwest::Error,
    },

    /// A probe got a response, but not HTTP 200.
    #[error("probe of {url} answered HTTP {status}")]
    ProbeStatus {
        /// URL that was probed.
        url: String,
        /// HTTP status code received.
        status: u16,
    },

    /// A probe got HTTP 200 with a body that is not the expected model listing.
    #[error("{kind} listing is malformed: {reason}")]
    MalformedListing {
        /// Server kind whose listing format was expected.
        kind: &'static str,
        /// What did not match.
        reason: String,
    },

    /// A server answered but lists no models, so it does not count as a backend.
    #[error("{url} lists no models")]
    NoModels {
        /// URL that was probed.
        url: String,
    },

    /// The control-plane address is not a usable gRPC URL.
    #[error("invalid control-plane address {addr:?}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// Why tonic refused it.
        #[source]
        source: tonic::transport::Error,
    },

    /// The gRPC connection to the control plane could not be opened.
    #[error("cannot connect to control plane at {addr}")]
    Connect {
        /// Control-plane URL.
        addr: String,
        /// Underlying transport error.
        #[source]
        source: tonic::transport::Error,
    },

    /// The report stream failed or was refused with a gRPC status.
    #[error("report stream to {addr} failed")]
    Stream {
        /// Control-plane URL.
        addr: String,
        /// Status returned by the control plane or the transport.
        #[source]
        source: tonic::Status,
    },

    /// The control plane closed the report stream without an error.
    #[error("control plane at {addr} closed the report stream")]
    StreamClosed {
        /// Control-plane URL.
        addr: String,
    },

    /// The control plane sent a redirect without naming a leader.
    #[error("control plane at {addr} redirected without a leader address")]
    NoLeader {
        /// Control-plane URL.
        addr: String,
    },

    /// The control plane took longer than allowed to accept the report stream.
    #[error("control plane at {addr} did not open the report stream within {after:?}")]
    OpenTimeout {
        /// Control-plane URL.
        addr: String,
        /// How long the agent waited.
        after: Duration,
    },

    /// A server answered its listing but says it must not take traffic now.
    #[error("{url} is not ready: {reason}")]
    NotReady {
        /// URL whose answer said so.
        url: String,
        /// What it said.
        reason: String,
    },

    /// A discovery peer entry cannot be parsed.
    #[error("invalid discovery peer {entry:?}: {reason}")]
    InvalidPeer {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Tailscale's LocalAPI or CLI failed or answered something unusable.
    #[error("tailscale status from {from} failed: {reason}")]
    Tailscale {
        /// `LocalAPI socket <path>` or `tailscale CLI`.
        from: String,
        /// What went wrong.
        reason: String,
    },

    /// `nvidia-smi` could not be run or printed something unusable.
    #[error("nvidia-smi failed: {reason}")]
    Gpu {
        /// What went wrong.
        reason: String,
    },

    /// No control plane was found over mDNS.
    #[error("no control plane found over mDNS within {after:?}")]
    NoControlPlaneFound {
        /// How long the agent browsed.
        after: Duration,
    },

    /// mDNS announcing or browsing failed.
    #[error("mDNS failed")]
    Mdns(#[source] switchyard_mdns::Error),

    /// The scan loop ended, so there is nothing left to report (only while shutting down).
    #[error("the scan loop stopped")]
    ScannerStopped,
}
