//! Talking to upstream model servers: the forwarded request body and the HTTP client.

pub mod body;
pub mod client;

pub use body::RequestBody;
pub use client::{UpstreamClient, UpstreamError};
