//! Switchyard's test harness: fake model servers and helpers that start real roles.
//!
//! - [`fake`]: model servers that behave like Ollama, vLLM and friends, on ephemeral ports.
//! - [`harness`]: starting `up` in-process and waiting on conditions instead of sleeping.
//! - [`deploy`]: rendering the Helm chart and reading the deployment files.
//! - [`browser`]: headless chromium for the dashboard tests.
//! - [`tmux`]: a detached tmux session for the `switchyard top` test.
//! - [`receiver`]: a webhook and OTLP receiver that can be up, down or slow.
//! - [`served_cluster`]: a cluster with endpoints and a key, and edges that follow its voters.

pub mod anthropic_fake;
pub mod browser;
pub mod catalog_fake;
pub mod cluster;
pub mod deploy;
pub mod discovery_cluster;
pub mod discovery_fakes;
pub mod edge_harness;
pub mod fake;
pub mod fault_proxy;
pub mod gemini_fake;
pub mod harness;
pub mod nemesis;
pub mod netns;
pub mod ollama_native_fake;
pub mod openai_fake;
pub mod python;
pub mod receiver;
pub mod served_cluster;
pub mod tmux;
