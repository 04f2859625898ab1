//! Switchyard's test harness: fake model servers and helpers that start real roles.
//!
//! - [`fake`]: model servers that behave like Ollama, vLLM and friends, on ephemeral ports.
//! - [`harness`]: starting `up` in-process and waiting on conditions instead of sleeping.

pub mod fake;
pub mod harness;
