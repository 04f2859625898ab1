//! `scale`: the control plane at size. A real three-voter cluster as processes; `agents`
//! simulated node agents (report streams in this process) own `endpoints` backends between
//! them and churn them (models loading and unloading, servers flapping) at `rate` changes per
//! second; `edges` simulated edges follow the routing table with deltas.
//!
//! Each change carries a marker (the backend's `running` count), so an edge knows which change
//! it holds. Propagation is from the agent's report to the last edge holding the change; a
//! change overtaken on the same backend counts as delivered with the one that overtook it.
//! Bytes are the encoded table messages edges receive during the churn, per change per edge.
//! Leader CPU and RSS come from `/proc` for the leader's process over the churn.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prost::Message;
use switchyard_proto::v1::agent_message::Body;
use switchyard_proto::v1::agent_service_client::AgentServiceClient;
use switchyard_proto::v1::control_message::Body as Reply;
use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use switchyard_proto::v1::{
    AgentMessage, Backend, BackendFacts, BackendSnapshot, BackendUpdate, Heartbeat, Hello,
    RoutingTable, WatchRoutingTableRequest,
};
use switchyard_tests::cluster::Cluster;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// What to simulate.
#[derive(Debug, Clone, Copy)]
pub struct ScaleArgs {
    /// Simulated node agents.
    pub agents: usize,
    /// Backends across all agents (each becomes an endpoint).
    pub endpoints: usize,
    /// Simulated edges following the table.
    pub edges: usize,
    /// Seconds of churn.
    pub seconds: f64,
    /// Changes per second.
    pub rate: f64,
}

/// Agents sharing one connection to the leader (HTTP/2 streams; servers cap them near 200).
const AGENTS_PER_CHANNEL: usize = 64;
/// How often a simulated agent sends a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long after the churn stops edges may still catch up.
const GRACE: Duration = Duration::from_secs(5);
/// Linux clock ticks per second (`getconf CLK_TCK`), for `/proc/<pid>/stat`.
const CLK_TCK: f64 = 100.0;

/// One change an agent reported, and which edges hold it.
struct Change {
    sent: Instant,
    edges: usize,
    last: Instant,
}

#[derive(Default)]
struct Ledger {
    changes: HashMap<u32, Change>,
    /// Markers sent per endpoint, in order.
    by_endpoint: HashMap<String, Vec<u32>>,
    /// Table bytes edges received since the churn began.
    bytes: u64,
    counting: bool,
    /// Times a simulated edge had to follow another stream.
    reconnects: u64,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the benchmark and prints its figures; the last line is the summary.
pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.agents > 0 && args.edges > 0,
        "agents and edges must be positive"
    );
    anyhow::ensure!(
        args.endpoints >= args.agents,
        "at least one endpoint per agent"
    );
    let cluster = Cluster::start(3, false).await?;
    let leader = cluster.wait_leader(Duration::from_secs(20)).await?;
    let leader_addr = cluster
        .voter(leader)
        .grpc()
        .ok_or_else(|| anyhow::anyhow!("the leader has no gRPC address"))?;
    let voters: Vec<String> = (1..=3)
        .filter_map(|id| cluster.voter(id).grpc())
        .map(|a| format!("http://{a}"))
        .collect();
    let ledger: Shared = Arc::default();

    // Agents: connect, send their snapshots, then heartbeats and the changes they are told.
    let started = Instant::now();
    let agents = spawn_agents(args, leader_addr).await?;

    // Edges: each follows one voter, round robin, and applies deltas to its table.
    let mut ready = Vec::new();
    for e in 0..args.edges {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(edge(voters.clone(), e, args.endpoints, ledger.clone(), tx));
        ready.push(rx);
    }
    let setup_deadline = Duration::from_secs(60 + (args.endpoints / 50) as u64);
    for rx in ready {
        tokio::time::timeout(setup_deadline, rx)
            .await
            .map_err(|_| {
                anyhow::anyhow!("an edge never held all {} endpoints", args.endpoints)
            })??;
    }
    println!(
        "scale: {} agents reported {} endpoints, {} edges hold them, in {:.1} s",
        args.agents,
        args.endpoints,
        args.edges,
        started.elapsed().as_secs_f64()
    );

    // Any voter that still hears the leader answers; a busy machine may cost one its contact.
    let mut costs = Err(anyhow::anyhow!("no voter served a table"));
    for voter in &voters {
        costs = edge_costs(voter).await;
        if costs.is_ok() {
            break;
        }
    }
    costs?;

    // Churn at the rate asked, measuring the leader meanwhile.
    let pid = cluster
        .pid(leader)
        .ok_or_else(|| anyhow::anyhow!("no leader process"))?;
    let cpu_before = cpu_ticks(pid)?;
    lock(&ledger).counting = true;
    let churn_started = Instant::now();
    drive_churn(args, &agents, &ledger).await?;
    let churn = churn_started.elapsed().as_secs_f64();
    let cpu_pct = (cpu_ticks(pid)? - cpu_before) as f64 / CLK_TCK / churn * 100.0;
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && lock(&ledger).changes.values().any(|c| c.edges < args.edges)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_mb = rss_kib(pid)? as f64 / 1024.0;

    summarise(args, &lock(&ledger), churn, cpu_pct, rss_mb);
    Ok(())
}

type Agents = Vec<(mpsc::Sender<(usize, u32)>, Vec<Backend>)>;

/// Starts the simulated agents, `AGENTS_PER_CHANNEL` to a connection to the leader.
async fn spawn_agents(
    args: ScaleArgs,
    leader_addr: std::net::SocketAddr,
) -> anyhow::Result<Agents> {
    let mut channels = Vec::new();
    for _ in 0..args.agents.div_ceil(AGENTS_PER_CHANNEL) {
        channels.push(
            Channel::from_shared(format!("http://{leader_addr}"))?
                .connect()
                .await?,
        );
    }
    let models = (args.endpoints / 50).max(4);
    let mut agents = Vec::new();
    for i in 0..args.agents {
        let count = args.endpoints / args.agents + usize::from(i < args.endpoints % args.agents);
        let backends: Vec<Backend> = (0..count).map(|j| backend(i, j, models)).collect();
        let (tx, rx) = mpsc::channel(64);
        let channel = channels[i / AGENTS_PER_CHANNEL].clone();
        tokio::spawn(agent(channel, i, backends.clone(), rx));
        agents.push((tx, backends));
    }
    Ok(agents)
}

/// Tells random agents to change random backends at `args.rate` for `args.seconds`.
async fn drive_churn(args: ScaleArgs, agents: &Agents, ledger: &Shared) -> anyhow::Result<()> {
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let mut ticker = tokio::time::interval(interval);
    let mut seq = 0u32;
    while started.elapsed().as_secs_f64() < args.seconds {
        ticker.tick().await;
        seq += 1;
        let (tx, backends) = &agents[fastrand::usize(..agents.len())];
        let j = fastrand::usize(..backends.len());
        {
            let mut l = lock(ledger);
            let now = Instant::now();
            l.changes.insert(
                seq,
                Change {
                    sent: now,
                    edges: 0,
                    last: now,
                },
            );
            l.by_endpoint
                .entry(backends[j].id.clone())
                .or_default()
                .push(seq);
        }
        // An agent between streams takes the change when it reports again.
        if tx.send((j, seq)).await.is_err() {
            anyhow::bail!("simulated agent stopped");
        }
    }
    Ok(())
}

/// Prints the figures; the last line is the summary.
fn summarise(args: ScaleArgs, l: &Ledger, churn: f64, cpu_pct: f64, rss_mb: f64) {
    let mut propagation: Vec<Duration> = l
        .changes
        .values()
        .filter(|c| c.edges >= args.edges)
        .map(|c| c.last - c.sent)
        .collect();
    propagation.sort();
    let changes = l.changes.len();
    let missing = changes - propagation.len();
    let quantile = |q: f64| {
        propagation
            .get(((propagation.len().max(1) - 1) as f64 * q).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let p99 = quantile(0.99);
    let per_change = l.bytes as f64 / (changes.max(1) * args.edges) as f64;
    println!(
        "scale: {changes} changes in {churn:.1} s, {} edge reconnects, {missing} not at every edge within {} s; propagation p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        l.reconnects,
        GRACE.as_secs(),
        quantile(0.5),
        quantile(0.9),
        quantile(1.0)
    );
    println!(
        "scale: agents={} endpoints={} edges={} changes={changes} propagation_p99_ms={p99:.1} bytes_per_change_per_edge={per_change:.0} leader_cpu_pct={cpu_pct:.1} leader_rss_mb={rss_mb:.0}",
        args.agents, args.endpoints, args.edges
    );
}

/// What one change costs a real edge at this size: applying a one-endpoint delta to the wire
/// table, and compiling the result (the edge compiles every version it installs).
async fn edge_costs(voter: &str) -> anyhow::Result<()> {
    let mut client = EdgeServiceClient::connect(voter.to_string())
        .await?
        .max_decoding_message_size(256 * 1024 * 1024);
    let request = WatchRoutingTableRequest {
        since_version: 0,
        edge_name: "edge-costs".into(),
        deltas: false,
        cluster_id: String::new(),
    };
    let mut stream = client.watch_routing_table(request).await?.into_inner();
    let full = stream
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no table"))?;
    let mut next = full.clone();
    next.version += 1;
    if let Some(facts) = next.endpoints.first_mut().and_then(|e| e.facts.as_mut()) {
        facts.running += 1;
    }
    let delta = switchyard_proto::delta::diff(&full, &next)
        .ok_or_else(|| anyhow::anyhow!("the table repeats a key"))?;
    let started = Instant::now();
    let applied = switchyard_proto::delta::apply(&full, &delta)?;
    let apply = started.elapsed();
    let compiled = switchyard_edge::routing::RoutingTable::compile(&applied, None);
    let started = Instant::now();
    let again = switchyard_edge::routing::RoutingTable::compile(&applied, Some(&compiled));
    let compile = started.elapsed();
    println!(
        "scale: at the edge, a one-endpoint delta ({} bytes, full table {} bytes) applies in {:.2} ms and the table of {} endpoints compiles in {:.2} ms",
        delta.encoded_len(),
        full.encoded_len(),
        apply.as_secs_f64() * 1000.0,
        again.endpoints.len(),
        compile.as_secs_f64() * 1000.0
    );
    Ok(())
}

fn backend(agent: usize, j: usize, models: usize) -> Backend {
    let a = format!("model-{}", (agent * 7 + j) % models);
    let b = format!("model-{}", (agent * 7 + j + 1) % models);
    Backend {
        id: format!("a{agent}-b{j}"),
        kind: "vllm".into(),
        base_url: format!(
            "http://10.{}.{}.{}:{}/v1",
            agent / 250 % 250,
            agent % 250,
            j % 250,
            8000 + j / 250
        ),
        models: vec![a.clone(), b],
        facts: Some(BackendFacts {
            healthy: true,
            loaded_models: vec![a],
            loaded_known: true,
            server_version: "0.6.3".into(),
            ..Default::default()
        }),
        api_key: String::new(),
    }
}

/// One simulated node agent: Hello and snapshot, then heartbeats and the changes it is sent
/// (`(backend index, marker)`), each a model loading or unloading or the server flapping.
async fn agent(
    mut channel: Channel,
    i: usize,
    mut backends: Vec<Backend>,
    mut changes: mpsc::Receiver<(usize, u32)>,
) {
    loop {
        let (tx, rx) = mpsc::channel(64);
        let send = |body| AgentMessage { body: Some(body) };
        let hello = Body::Hello(Hello {
            node_name: format!("agent-{i}"),
            version: "bench".into(),
            join_token: String::new(),
            addresses: vec![format!("10.0.{}.{}", i / 250, i % 250)],
        });
        let snapshot = Body::Snapshot(BackendSnapshot {
            backends: backends.clone(),
        });
        if tx.send(send(hello)).await.is_err() || tx.send(send(snapshot)).await.is_err() {
            return;
        }
        let mut client = AgentServiceClient::new(channel.clone());
        let (end_tx, mut ended) = tokio::sync::oneshot::channel::<Option<String>>();
        match client.report(ReceiverStream::new(rx)).await {
            Ok(response) => {
                let mut replies = response.into_inner();
                tokio::spawn(async move {
                    let mut leader = None;
                    while let Ok(Some(reply)) = replies.message().await {
                        if let Some(Reply::Redirect(r)) = reply.body {
                            leader = Some(r.leader_addr);
                        }
                    }
                    let _told = end_tx.send(leader);
                });
            }
            Err(_) => drop(end_tx),
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut beat = 0;
        let leader = loop {
            let body = tokio::select! {
                _ = heartbeat.tick() => {
                    beat += 1;
                    Body::Heartbeat(Heartbeat { seq: beat, gpus: Vec::new() })
                }
                end = &mut ended => break end.ok().flatten(),
                change = changes.recv() => {
                    let Some((j, marker)) = change else { return };
                    Body::Update(churn(&mut backends[j], marker))
                }
            };
            if tx.send(send(body)).await.is_err() {
                break None;
            }
        };
        // The stream ended (a leader change, an overloaded voter): report again from the start,
        // to the leader named when one was.
        if let Some(addr) = leader.filter(|a| !a.is_empty())
            && let Ok(endpoint) = Channel::from_shared(leader_url(&addr))
        {
            channel = endpoint.connect_lazy();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leader_url(addr: &str) -> String {
    if addr.starts_with("http") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// One change to a backend, marked: a model loading or unloading, or the server flapping.
fn churn(b: &mut Backend, marker: u32) -> BackendUpdate {
    let facts = b.facts.get_or_insert_with(Default::default);
    facts.running = marker;
    if marker.is_multiple_of(3) {
        facts.healthy = !facts.healthy;
    } else if facts.loaded_models.len() > 1 {
        facts.loaded_models.pop();
    } else {
        facts.loaded_models = b.models.clone();
    }
    BackendUpdate {
        upserted: vec![b.clone()],
        removed: Vec::new(),
    }
}

/// One simulated edge: follows a voter's table with deltas (moving to the next voter when a
/// stream ends, from the version it holds); reports ready once it holds `endpoints` endpoints;
/// records which changes it holds and, during the churn, its bytes.
async fn edge(
    voters: Vec<String>,
    e: usize,
    endpoints: usize,
    ledger: Shared,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut sim = SimEdge {
        e,
        endpoints,
        ledger,
        ready: Some(ready),
        ids: HashSet::new(),
        version: 0,
        cluster_id: String::new(),
        seen: HashMap::new(),
        counted: HashSet::new(),
    };
    for attempt in 0.. {
        if attempt > 0 {
            lock(&sim.ledger).reconnects += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let voter = voters[(e + attempt) % voters.len()].clone();
        let Ok(client) = EdgeServiceClient::connect(voter).await else {
            continue;
        };
        let mut client = client.max_decoding_message_size(256 * 1024 * 1024);
        let request = WatchRoutingTableRequest {
            since_version: sim.version,
            edge_name: format!("edge-{e}"),
            deltas: true,
            cluster_id: sim.cluster_id.clone(),
        };
        let Ok(response) = client.watch_routing_table(request).await else {
            continue;
        };
        let mut stream = response.into_inner();
        while let Ok(Some(message)) = stream.message().await {
            if !sim.take(&message) {
                // A gap: ask again from scratch.
                sim.version = 0;
                break;
            }
        }
    }
}

/// What a simulated edge holds: only endpoint ids and the markers it saw. A simulated edge must
/// stay cheap at 100 per process; the deltas' correctness is the property test's business.
struct SimEdge {
    e: usize,
    endpoints: usize,
    ledger: Shared,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    ids: HashSet<String>,
    version: u64,
    cluster_id: String,
    seen: HashMap<String, u32>,
    counted: HashSet<u32>,
}

impl SimEdge {
    /// Takes one table message; false when it is a delta from another version than the one held.
    fn take(&mut self, message: &RoutingTable) -> bool {
        let bytes = message.encoded_len() as u64;
        let arrived = Instant::now();
        // Markers of the endpoints this message changed (all of them for a full table).
        let changed: Vec<(&str, u32)> = match &message.delta {
            Some(d) => {
                if d.base_version != self.version {
                    eprintln!(
                        "scale: edge {}: a delta from {} while holding {}",
                        self.e, d.base_version, self.version
                    );
                    return false;
                }
                for id in &d.endpoints_removed {
                    self.ids.remove(id);
                }
                d.endpoints_put
                    .iter()
                    .map(|p| (p.id.as_str(), marker(p)))
                    .collect()
            }
            None => {
                self.ids.clear();
                message
                    .endpoints
                    .iter()
                    .map(|p| (p.id.as_str(), marker(p)))
                    .collect()
            }
        };
        self.version = message.version;
        if !message.cluster_id.is_empty() {
            self.cluster_id.clone_from(&message.cluster_id);
        }
        let mut l = lock(&self.ledger);
        if l.counting {
            l.bytes += bytes;
        }
        for (id, m) in changed {
            if !self.ids.contains(id) {
                self.ids.insert(id.to_string());
            }
            let before = self.seen.get(id).copied().unwrap_or(0);
            if m <= before {
                continue;
            }
            self.seen.insert(id.to_string(), m);
            let delivered: Vec<u32> = l
                .by_endpoint
                .get(id)
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|s| *s > before && *s <= m)
                        .collect()
                })
                .unwrap_or_default();
            for s in delivered {
                if self.counted.insert(s)
                    && let Some(c) = l.changes.get_mut(&s)
                {
                    c.edges += 1;
                    c.last = c.last.max(arrived);
                }
            }
        }
        drop(l);
        if self.ids.len() >= self.endpoints
            && let Some(tx) = self.ready.take()
        {
            let _ready = tx.send(());
        }
        true
    }
}

fn marker(endpoint: &switchyard_proto::v1::RouteEndpoint) -> u32 {
    endpoint.facts.as_ref().map_or(0, |f| f.running)
}

/// User plus system CPU of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}
