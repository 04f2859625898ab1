//! LAN discovery for Switchyard over mDNS / DNS-SD: control planes and node agents announce
//! themselves as `_switchyard._tcp.local.` services and find each other with no configuration.
//!
//! Every announcement carries TXT properties: `role` (`control-plane` or `agent`), `node` (the
//! node's name) and `version`. A control plane's SRV port is its gRPC port; an agent serves
//! nothing, so its SRV port is the gRPC port of the control plane it reports to (0 while unknown).
//!
//! mDNS does not cross routers or a tailnet; agents beyond the LAN are given `--control-plane`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use tracing::{debug, warn};

/// The DNS-SD service type every Switchyard role announces.
pub const SERVICE_TYPE: &str = "_switchyard._tcp.local.";

/// TXT key holding the announcing role.
const ROLE_KEY: &str = "role";
/// TXT key holding the node name.
const NODE_KEY: &str = "node";
/// TXT key holding the build version.
const VERSION_KEY: &str = "version";

/// Everything that can go wrong announcing or browsing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mDNS daemon could not start (no usable network interface, sockets refused).
    #[error("cannot start the mDNS daemon")]
    Daemon(#[source] mdns_sd::Error),
    /// The announcement was refused (bad name or port).
    #[error("cannot announce {role} {name:?} over mDNS")]
    Announce {
        /// Role being announced.
        role: Role,
        /// Instance name that was refused.
        name: String,
        /// Why mdns-sd refused it.
        #[source]
        source: mdns_sd::Error,
    },
    /// Browsing could not start.
    #[error("cannot browse for {SERVICE_TYPE}")]
    Browse(#[source] mdns_sd::Error),
}

/// Which Switchyard role an announcement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A control-plane voter; its port serves gRPC to agents and edges.
    ControlPlane,
    /// A node agent.
    Agent,
}

impl Role {
    /// The TXT `role` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ControlPlane => "control-plane",
            Self::Agent => "agent",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "control-plane" => Some(Self::ControlPlane),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Switchyard node found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The announced role.
    pub role: Role,
    /// The node's name (TXT `node`).
    pub node: String,
    /// The announced build version (TXT `version`), empty when absent.
    pub version: String,
    /// Addresses the node answered from, best first: routable IPv4, IPv6, then loopback.
    pub addresses: Vec<IpAddr>,
    /// The SRV port (see the crate docs for what it means per role).
    pub port: u16,
}

impl Found {
    /// `http://addr:port` for every address, best first: where to reach a control plane's gRPC.
    pub fn grpc_urls(&self) -> Vec<String> {
        self.addresses
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(v4) => format!("http://{v4}:{}", self.port),
                IpAddr::V6(v6) => format!("http://[{v6}]:{}", self.port),
            })
            .collect()
    }
}

/// A live announcement; dropping it (or calling [`Advertisement::stop`]) withdraws it.
pub struct Advertisement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Advertisement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertisement")
            .field("fullname", &self.fullname)
            .finish()
    }
}

impl Advertisement {
    /// The DNS-SD instance name announced, e.g. `control-plane-gpu01._switchyard._tcp.local.`.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Withdraws the announcement (a goodbye packet) and stops the daemon.
    pub async fn stop(self) {
        // Drop does the same, but here the goodbye gets a moment to leave before the daemon stops.
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _status = tokio::time::timeout(Duration::from_secs(1), done.recv_async()).await;
        }
    }
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        // Best effort: the process may be exiting; a missed goodbye only delays expiry (TTL).
        if let Err(e) = self.daemon.unregister(&self.fullname) {
            debug!(service = %self.fullname, error = %e, "mDNS unregister failed");
        }
        if let Err(e) = self.daemon.shutdown() {
            debug!(error = %e, "mDNS daemon shutdown failed");
        }
    }
}

/// Announces a control plane whose gRPC (agents and edges) listens on `grpc_port` on every
/// interface address of this host, under `node_name`.
///
/// Call it once the gRPC listener is bound; keep the returned value alive while serving.
pub fn advertise_control_plane(node_name: &str, grpc_port: u16) -> Result<Advertisement, Error> {
    advertise(Role::ControlPlane, node_name, grpc_port)
}

/// Announces a node agent named `node_name`, reporting to a control plane on `control_plane_port`
/// (0 while it has none), so `switchyard status` can list LAN nodes.
pub fn advertise_agent(node_name: &str, control_plane_port: u16) -> Result<Advertisement, Error> {
    advertise(Role::Agent, node_name, control_plane_port)
}

fn advertise(role: Role, node_name: &str, port: u16) -> Result<Advertisement, Error> {
    let daemon = ServiceDaemon::new().map_err(Error::Daemon)?;
    let instance = instance_name(role, node_name);
    let host = format!("{}.local.", dns_label(node_name));
    let properties = [
        (ROLE_KEY, role.as_str()),
        (NODE_KEY, node_name),
        (VERSION_KEY, env!("CARGO_PKG_VERSION")),
    ];
    let refused = |source| Error::Announce {
        role,
        name: instance.clone(),
        source,
    };
    // No addresses given: mdns-sd answers with each interface's own address, so a peer on any
    // segment gets one it can reach.
    let info = ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", port, &properties[..])
        .map_err(refused)?
        .enable_addr_auto();
    let fullname = info.get_fullname().to_owned();
    daemon.register(info).map_err(refused)?;
    debug!(service = %fullname, port, "announced over mDNS");
    Ok(Advertisement { daemon, fullname })
}

/// Browses for `wait` and returns every control plane found, by node name.
pub async fn browse_control_planes(wait: Duration) -> Result<Vec<Found>, Error> {
    browse(Some(Role::ControlPlane), wait, false).await
}

/// Browses until the first control plane resolves, or `wait` passes (then an empty list).
pub async fn first_control_plane(wait: Duration) -> Result<Option<Found>, Error> {
    Ok(browse(Some(Role::ControlPlane), wait, true)
        .await?
        .into_iter()
        .next())
}

/// Browses for `wait` and returns every node agent found, by node name.
pub async fn browse_agents(wait: Duration) -> Result<Vec<Found>, Error> {
    browse(Some(Role::Agent), wait, false).await
}

/// Browses for `wait` and returns every Switchyard node of any role, by role then node name.
pub async fn browse_all(wait: Duration) -> Result<Vec<Found>, Error> {
    browse(None, wait, false).await
}

async fn browse(role: Option<Role>, wait: Duration, first: bool) -> Result<Vec<Found>, Error> {
    let daemon = ServiceDaemon::new().map_err(Error::Daemon)?;
    let events = daemon.browse(SERVICE_TYPE).map_err(Error::Browse)?;
    let mut found: BTreeMap<(Role, String), Found> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let event = match tokio::time::timeout_at(deadline, events.recv_async()).await {
            Ok(Ok(event)) => event,
            // Timed out, or the daemon went away.
            Ok(Err(_)) | Err(_) => break,
        };
        let ServiceEvent::ServiceResolved(service) = event else {
            continue;
        };
        let Some(node) = parse_resolved(
            service.get_property_val_str(ROLE_KEY),
            service.get_property_val_str(NODE_KEY),
            service.get_property_val_str(VERSION_KEY),
            service.get_addresses().iter().map(|a| a.to_ip_addr()),
            service.get_port(),
        ) else {
            debug!(service = %service.get_fullname(), "ignoring announcement without a Switchyard role");
            continue;
        };
        if role.is_some_and(|r| r != node.role) {
            continue;
        }
        found.insert((node.role, node.node.clone()), node);
        if first {
            break;
        }
    }
    if let Err(e) = daemon.shutdown() {
        warn!(error = %e, "mDNS browse daemon did not shut down cleanly");
    }
    Ok(found.into_values().collect())
}

/// Turns a resolved service's parts into a [`Found`]; `None` when it is not a Switchyard role.
fn parse_resolved(
    role: Option<&str>,
    node: Option<&str>,
    version: Option<&str>,
    addresses: impl Iterator<Item = IpAddr>,
    port: u16,
) -> Option<Found> {
    let role = Role::parse(role?)?;
    let node = node?.trim();
    if node.is_empty() {
        return None;
    }
    let mut addresses: Vec<IpAddr> = addresses.collect();
    addresses.sort_by_key(|ip| (address_rank(ip), *ip));
    addresses.dedup();
    if addresses.is_empty() {
        return None;
    }
    Some(Found {
        role,
        node: node.to_owned(),
        version: version.unwrap_or_default().to_owned(),
        addresses,
        port,
    })
}

/// Lower is better: routable IPv4, then IPv6 (link-local last), then loopback.
fn address_rank(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => 4,
        IpAddr::V4(_) => 0,
        IpAddr::V6(v6) if v6.is_loopback() => 4,
        IpAddr::V6(v6) if v6.is_unicast_link_local() => 2,
        IpAddr::V6(_) => 1,
    }
}

/// `<role>-<node>`: an instance name unique per role on a host.
fn instance_name(role: Role, node_name: &str) -> String {
    format!("{}-{}", role.as_str(), dns_label(node_name))
}

/// A DNS label from a node name: letters, digits and `-`, at most 63 bytes.
fn dns_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "switchyard".to_owned()
    } else {
        label.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn resolved_services_parse_or_are_ignored() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let ll6: IpAddr = "fe80::1".parse().unwrap();
        let ula: IpAddr = "fd00::5".parse().unwrap();
        let got = parse_resolved(
            Some("control-plane"),
            Some("gpu01"),
            Some("0.1.0"),
            [
                v4(127, 0, 0, 1),
                lo6,
                ll6,
                ula,
                v4(10, 0, 0, 5),
                v4(10, 0, 0, 5),
            ]
            .into_iter(),
            7700,
        )
        .unwrap();
        assert_eq!(got.role, Role::ControlPlane);
        assert_eq!(got.node, "gpu01");
        assert_eq!(
            got.grpc_urls(),
            [
                "http://10.0.0.5:7700",
                "http://[fd00::5]:7700",
                "http://[fe80::1]:7700",
                "http://127.0.0.1:7700",
                "http://[::1]:7700",
            ]
        );
        let cases: &[(Option<&str>, Option<&str>, usize)] = &[
            (None, Some("n"), 1),
            (Some("printer"), Some("n"), 1),
            (Some("agent"), None, 1),
            (Some("agent"), Some(" "), 1),
            (Some("agent"), Some("n"), 0),
        ];
        for (role, node, addrs) in cases {
            let addresses = std::iter::repeat_n(v4(10, 0, 0, 1), *addrs);
            assert!(
                parse_resolved(*role, *node, None, addresses, 1).is_none(),
                "{role:?} {node:?} {addrs}"
            );
        }
    }

    #[test]
    fn names_are_dns_safe() {
        assert_eq!(instance_name(Role::Agent, "gpu01"), "agent-gpu01");
        assert_eq!(
            instance_name(Role::ControlPlane, "dgx.lab_1"),
            "control-plane-dgx-lab-1"
        );
        assert_eq!(dns_label("..."), "switchyard");
        assert_eq!(dns_label(&"a".repeat(100)).len(), 63);
    }
}
