//! Discovery: where backends are found and how scans become reports.
//!
//! - [`local`]: names of the configured local targets.
//! - [`peers`]: `host` / `host:port` peer entries and peer naming.
//! - [`tailscale`]: online tailnet peers from tailscaled's LocalAPI or CLI.
//! - [`scan`]: one scan over every source, with naming and deduplication.
//! - [`lifecycle`]: the pure tracker turning scans into upserts, health changes and removals.
//! - [`control_plane`]: finding the control plane over mDNS when none is configured.

pub mod control_plane;
pub mod lifecycle;
pub mod local;
pub mod peers;
pub mod scan;
pub mod tailscale;
