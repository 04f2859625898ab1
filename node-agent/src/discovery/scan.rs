//! One scan: gather every place to look (local targets, `host.docker.internal`, peers, tailnet
//! peers), probe them all concurrently, and name what answered.
//!
//! Naming, in this order so earlier sources keep the plainer names:
//! 1. local targets: [`local::backend_ids`] (`ollama`, or `ollama-<node>` in a cluster);
//! 2. `host.docker.internal`: the local name of its kind, or, if a loopback server already holds
//!    it, that name plus `-host-docker-internal`;
//! 3. peers and tailnet peers: `<kind>-<host with . and : as ->`; a second server of the same kind on
//!    the same host adds `-<port>`.
//!
//! A tailnet peer is probed on each of its Tailscale IPs, and each kind found is reported once, at
//! the first address (IPv4 first) that answered.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use switchyard_proto::v1::Backend;
use tracing::{debug, info, warn};

use super::local::{backend_ids, local_id};
use super::peers::{self, PeerAddr, host_slug, peer_id};
use super::tailscale;
use crate::config::{Config, Naming, Secret, TailscaleConfig};
use crate::error::Error;
use crate::probe::facts::{Probed, probe_backend};
use crate::probe::identify::identify;
use crate::probe::{self, ServerKind};

/// The Docker host gateway name probed alongside loopback.
pub const DOCKER_HOST: &str = "host.docker.internal";

/// How a target's hits are named.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NameRule {
    /// A configured local target with its precomputed id.
    Local(String),
    /// `host.docker.internal`: the local name of the kind found, else suffixed with the host.
    DockerHost,
    /// A peer or tailnet peer: `<kind>-<host>`.
    Peer,
}

/// One place to probe in this scan.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    /// `None`: identify the kind at this port.
    kind: Option<ServerKind>,
    api_key: Option<Secret>,
    naming: NameRule,
    /// Hits sharing a group and kind are one server (a tailnet node's several IPs): keep the first.
    group: Option<String>,
}

/// What the scanner remembers between scans.
#[derive(Debug, Default)]
struct Memory {
    /// Kinds identified at `host:port` peers, so later scans send one listing, not every signature.
    identified: HashMap<(String, u16), ServerKind>,
    /// Hosts that failed to resolve and were warned about (warned again only after they resolved).
    unresolved: HashSet<String>,
    /// The last Tailscale problem logged at warn, so a persistent one is not repeated every scan.
    tailscale_error: Option<String>,
}

/// Probes every configured source; cheap to share, safe to call from one task at a time or many.
#[derive(Debug)]
pub struct Scanner {
    client: reqwest::Client,
    timeout: Duration,
    local_scan: bool,
    docker_host: bool,
    naming: Naming,
    node_name: String,
    local: Vec<Target>,
    peers: Vec<(PeerAddr, Option<Secret>)>,
    tailscale: TailscaleConfig,
    memory: Mutex<Memory>,
}

impl Scanner {
    /// A scanner for `cfg` (targets, discovery sources, naming), probes limited to `cfg.probe_timeout_ms`.
    pub fn new(cfg: &Config) -> Result<Self, Error> {
        let client = probe::http_client(cfg.probe_timeout())?;
        let ids = backend_ids(&cfg.targets, cfg.naming, &cfg.node_name);
        let local = ids
            .into_iter()
            .zip(&cfg.targets)
            .map(|(id, t)| Target {
                host: t.host.clone(),
                port: t.port,
                kind: Some(t.kind),
                api_key: None,
                naming: NameRule::Local(id),
                group: None,
            })
            .collect();
        let peers = cfg
            .discovery
            .peers
            .iter()
            .map(|p| Ok((peers::parse(p.address())?, p.api_key().cloned())))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self {
            client,
            timeout: cfg.probe_timeout(),
            local_scan: cfg.discovery.local_scan,
            docker_host: cfg.discovery.docker_host,
            naming: cfg.naming,
            node_name: cfg.node_name.clone(),
            local,
            peers,
            tailscale: cfg.discovery.tailscale.clone(),
            memory: Mutex::new(Memory::default()),
        })
    }

    /// Probes every source concurrently; returns the backends that answered, sorted by id.
    pub async fn scan(&self) -> Vec<Backend> {
        let targets = self.targets().await;
        let results = join_all(targets.iter().map(|t| self.probe(t))).await;
        let hits = targets
            .iter()
            .zip(results)
            .filter_map(|(t, r)| r.map(|(kind, probed)| (t, kind, probed)));
        assemble(hits, self.naming, &self.node_name)
    }

    /// This scan's targets: local ones, the Docker host, resolvable peers, online tailnet peers.
    async fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let docker = async {
            if self.local_scan && self.docker_host && self.docker_host_resolves().await {
                ServerKind::ALL
                    .into_iter()
                    .map(|kind| Target {
                        host: DOCKER_HOST.to_owned(),
                        port: kind.default_port(),
                        kind: Some(kind),
                        api_key: None,
                        naming: NameRule::DockerHost,
                        group: None,
                    })
                    .collect()
            } else {
                Vec::new()
            }
        };
        let peers = join_all(self.peers.iter().map(|(peer, key)| async move {
            if !self.resolves(&peer.host).await {
                return Vec::new();
            }
            peers::probes(peer)
                .into_iter()
                .map(|(kind, port)| Target {
                    host: peer.host.clone(),
                    port,
                    kind,
                    api_key: key.clone(),
                    naming: NameRule::Peer,
                    group: None,
                })
                .collect::<Vec<_>>()
        }));
        let (docker, peers, tailnet) = tokio::join!(docker, peers, self.tailnet_targets());
        if self.local_scan {
            targets.extend(self.local.iter().cloned());
        }
        targets.extend(docker);
        targets.extend(peers.into_iter().flatten());
        targets.extend(tailnet);
        targets
    }

    /// True when `host.docker.internal` resolves to something other than loopback (which the
    /// local targets already cover).
    async fn docker_host_resolves(&self) -> bool {
        let lookup = tokio::time::timeout(self.timeout, tokio::net::lookup_host((DOCKER_HOST, 0)));
        match lookup.await {
            Ok(Ok(addrs)) => addrs.into_iter().any(|a| !a.ip().is_loopback()),
            _ => false,
        }
    }

    /// True when `host` is an IP or resolves; warns once per host until it resolves again.
    async fn resolves(&self, host: &str) -> bool {
        if host.parse::<IpAddr>().is_ok() {
            return true;
        }
        let lookup = tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, 0))).await;
        let resolved = match lookup {
            Ok(Ok(mut addrs)) => addrs.next().is_some(),
            _ => false,
        };
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        if resolved {
            if memory.unresolved.remove(host) {
                info!(peer = %host, "discovery peer resolves again");
            }
        } else if memory.unresolved.insert(host.to_owned()) {
            warn!(peer = %host, "discovery peer does not resolve; skipping it and retrying at the next scan");
        }
        resolved
    }

    /// One target per (online tailnet peer, IP, kind).
    async fn tailnet_targets(&self) -> Vec<Target> {
        let peers = tailscale::online_peers(&self.tailscale, self.timeout).await;
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let peers = match peers {
            Ok(Some(peers)) => {
                memory.tailscale_error = None;
                peers
            }
            Ok(None) => return Vec::new(),
            Err(e) => {
                let text = e.to_string();
                if memory.tailscale_error.as_deref() != Some(text.as_str()) {
                    warn!(error = %text, "cannot read tailnet peers");
                    memory.tailscale_error = Some(text);
                }
                return Vec::new();
            }
        };
        let mut targets = Vec::new();
        for peer in peers {
            for ip in &peer.ips {
                for kind in ServerKind::ALL {
                    targets.push(Target {
                        host: ip.to_string(),
                        port: kind.default_port(),
                        kind: Some(kind),
                        api_key: None,
                        naming: NameRule::Peer,
                        group: Some(format!("tailnet:{}:{:?}", peer.host_name, peer.ips)),
                    });
                }
            }
        }
        targets
    }

    /// Probes one target; identifies the kind first when it is not known.
    async fn probe(&self, target: &Target) -> Option<(ServerKind, Probed)> {
        let origin = peers::origin(&target.host, target.port);
        let key = target.api_key.as_ref().map(Secret::expose);
        let kind = match target.kind {
            Some(kind) => kind,
            None => {
                let remembered = self
                    .memory
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .identified
                    .get(&(target.host.clone(), target.port))
                    .copied();
                if let Some(kind) = remembered
                    && let Ok(probed) = probe_backend(&self.client, &origin, kind, key).await
                {
                    return Some((kind, probed));
                }
                match identify(&self.client, &origin, target.port, key).await {
                    Ok(kind) => {
                        self.memory
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .identified
                            .insert((target.host.clone(), target.port), kind);
                        kind
                    }
                    Err(error) => {
                        debug!(target = %origin, error = %error, "nothing identified");
                        return None;
                    }
                }
            }
        };
        match probe_backend(&self.client, &origin, kind, key).await {
            Ok(probed) => Some((kind, probed)),
            Err(error) => {
                // Most targets are simply not running; that is normal, so keep it quiet.
                debug!(target = %origin, kind = %kind, error = %error, "probe found no backend");
                None
            }
        }
    }
}

/// Names the hits (in target order) and builds the backends, sorted by id.
fn assemble<'a>(
    hits: impl Iterator<Item = (&'a Target, ServerKind, Probed)>,
    naming: Naming,
    node_name: &str,
) -> Vec<Backend> {
    let hits: Vec<_> = hits.collect();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut groups: HashSet<(String, ServerKind)> = HashSet::new();
    let mut out = Vec::new();
    // Local first, then the Docker host, then peers: earlier sources keep the plainer names.
    let rank = |n: &NameRule| match n {
        NameRule::Local(_) => 0,
        NameRule::DockerHost => 1,
        NameRule::Peer => 2,
    };
    let mut order: Vec<usize> = (0..hits.len()).collect();
    order.sort_by_key(|i| rank(&hits[*i].0.naming));
    for i in order {
        let (target, kind, probed) = &hits[i];
        if let Some(group) = &target.group
            && !groups.insert((group.clone(), *kind))
        {
            continue;
        }
        let preferred = match &target.naming {
            NameRule::Local(id) => id.clone(),
            NameRule::DockerHost => local_id(*kind, naming, node_name),
            NameRule::Peer => peer_id(*kind, &target.host),
        };
        let fallback = match &target.naming {
            NameRule::Local(_) => format!("{preferred}-{}", host_slug(&target.host)),
            NameRule::DockerHost => format!("{preferred}-{}", host_slug(&target.host)),
            NameRule::Peer => format!("{preferred}-{}", target.port),
        };
        let id = [preferred, fallback]
            .into_iter()
            .find(|id| !taken.contains(id))
            .unwrap_or_else(|| {
                let base = format!("{}-{}", peer_id(*kind, &target.host), target.port);
                (2..)
                    .map(|n| format!("{base}-{n}"))
                    .find(|id| !taken.contains(id))
                    .unwrap_or(base)
            });
        taken.insert(id.clone());
        out.push(Backend {
            id,
            kind: kind.as_str().to_owned(),
            base_url: format!("{}/v1", peers::origin(&target.host, target.port)),
            models: probed.models.clone(),
            facts: Some(probed.facts.clone()),
            api_key: target
                .api_key
                .as_ref()
                .map(|k| k.expose().to_owned())
                .unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::facts::unknown_facts;

    fn target(host: &str, port: u16, naming: NameRule, group: Option<&str>) -> Target {
        Target {
            host: host.to_owned(),
            port,
            kind: None,
            api_key: None,
            naming,
            group: group.map(str::to_owned),
        }
    }

    fn probed() -> Probed {
        Probed {
            models: vec!["m".to_owned()],
            facts: unknown_facts(),
        }
    }

    #[test]
    fn hits_are_named_by_source() {
        use ServerKind::*;
        let local =
            |id: &str, port| target("127.0.0.1", port, NameRule::Local(id.to_owned()), None);
        let docker = |port| target(DOCKER_HOST, port, NameRule::DockerHost, None);
        let peer = |host: &str, port| target(host, port, NameRule::Peer, None);
        let ts = |host: &str, port| target(host, port, NameRule::Peer, Some("node-a"));
        type Case = (
            Naming,
            Vec<(Target, ServerKind)>,
            Vec<(&'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                Naming::Bare,
                vec![
                    // Listed out of order: local still wins the bare name.
                    (docker(11434), Ollama),
                    (local("ollama", 11434), Ollama),
                    (docker(1234), LmStudio),
                    (peer("100.98.112.23", 1234), LmStudio),
                    (peer("nas.lan", 8001), Vllm),
                    (peer("nas.lan", 8002), Vllm),
                    (peer("fd7a::1", 4000), Litellm),
                ],
                vec![
                    ("litellm-fd7a--1", "http://[fd7a::1]:4000/v1"),
                    ("lmstudio", "http://host.docker.internal:1234/v1"),
                    ("lmstudio-100-98-112-23", "http://100.98.112.23:1234/v1"),
                    ("ollama", "http://127.0.0.1:11434/v1"),
                    (
                        "ollama-host-docker-internal",
                        "http://host.docker.internal:11434/v1",
                    ),
                    ("vllm-nas-lan", "http://nas.lan:8001/v1"),
                    ("vllm-nas-lan-8002", "http://nas.lan:8002/v1"),
                ],
            ),
            (
                Naming::NodeSuffix,
                vec![
                    (local("ollama-gpu01", 11434), Ollama),
                    (docker(8000), Vllm),
                    // One tailnet node on two IPs: reported once, at the first IP.
                    (ts("100.64.0.7", 11434), Ollama),
                    (ts("fd7a::7", 11434), Ollama),
                    (ts("fd7a::7", 8000), Vllm),
                ],
                vec![
                    ("ollama-100-64-0-7", "http://100.64.0.7:11434/v1"),
                    ("ollama-gpu01", "http://127.0.0.1:11434/v1"),
                    ("vllm-fd7a--7", "http://[fd7a::7]:8000/v1"),
                    ("vllm-gpu01", "http://host.docker.internal:8000/v1"),
                ],
            ),
        ];
        for (naming, hits, want) in cases {
            let got = assemble(hits.iter().map(|(t, k)| (t, *k, probed())), naming, "gpu01");
            let got: Vec<(&str, &str)> = got
                .iter()
                .map(|b| (b.id.as_str(), b.base_url.as_str()))
                .collect();
            assert_eq!(got, want, "{naming:?}");
        }
    }
}
