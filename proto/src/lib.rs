//! Switchyard's gRPC wire contract: generated types and services of package `switchyard.v1`,
//! the mutual-TLS settings every gRPC link shares ([`tls`]), the reloading certificate of the
//! HTTPS listeners ([`https`]), the [`secret::Secret`] string every role's config holds keys
//! in, the model-name [`glob`] the table's key scopes and catalog filters are written in, and
//! routing-table [`delta`]s.

pub mod delta;
pub mod https;
pub mod secret;
pub mod tls;

/// Matches `name` against a glob where `*` is any run of characters and `?` exactly one.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Package `switchyard.v1`: agent, edge and raft services and their messages.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
    tonic::include_proto!("switchyard.v1");
}
