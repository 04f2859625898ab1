//! Finding a control plane when none is configured: browse mDNS for `_switchyard._tcp.local.`
//! announcements with `role=control-plane` and try their addresses, best first.
//!
//! Any voter will do: one that is not the leader redirects the agent to the one that is.

use std::time::Duration;

use crate::error::Error;

/// How long one browse waits for the first control plane to resolve.
pub const BROWSE_WAIT: Duration = Duration::from_secs(3);

/// gRPC URLs of the first control plane found over mDNS within `wait`, best address first.
pub async fn find(wait: Duration) -> Result<Vec<String>, Error> {
    match switchyard_mdns::first_control_plane(wait)
        .await
        .map_err(Error::Mdns)?
    {
        Some(found) => {
            tracing::info!(node = %found.node, addresses = ?found.addresses, port = found.port, "found a control plane over mDNS");
            Ok(found.grpc_urls())
        }
        None => Err(Error::NoControlPlaneFound { after: wait }),
    }
}
