//! The process-wide rustls crypto provider for the control plane's outbound HTTP clients
//! (health checks, catalog listings and probes).

/// Installs ring as rustls's default provider. reqwest is built without one; the binary
/// installs it at start, and this covers embedders (tests, other hosts) that did not.
/// Installing twice keeps the first.
pub(crate) fn install_provider() {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::trace!("rustls crypto provider already installed");
    }
}
