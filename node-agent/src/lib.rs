//! Switchyard's node agent: finds the model servers on its host and reports them to the control plane.
//!
//! - [`config`]: what to probe, where to report, how often.
//! - [`probe`]: one listing probe per server kind (Ollama, LM Studio, vLLM, LiteLLM).
//! - [`discovery`]: scans of all targets and the pure tracker that turns scans into reports.
//! - [`gpu`]: GPU facts from `nvidia-smi`.
//! - [`reporter`]: the long-lived gRPC stream to the control plane.
//! - [`error`]: the crate's one error enum.

pub mod config;
pub mod discovery;
pub mod error;
pub mod gpu;
pub mod probe;
pub mod reporter;

pub use config::{Config, DiscoveryConfig, Naming, PeerEntry, Secret, TailscaleConfig};
pub use error::Error;
pub use probe::{ProbeTarget, ServerKind};
pub use reporter::run;
