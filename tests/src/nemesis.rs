//! A seeded, bounded fault scenario against a real control-plane cluster, and the history checks
//! that judge it.
//!
//! [`run`] starts three proxied voters, two in-process edges (following voters 1 and 2) and a fake
//! upstream, then drives client traffic through both edges, register writes and reads through
//! the admin API, and client-key creations and revocations, while a nemesis injects one fault at
//! a time, chosen by a [`Rng`] seeded from the run's seed: kill -9 and restart of a voter,
//! SIGSTOP/SIGCONT of the leader, a partition of one voter, a delayed link, a full control-plane
//! outage. After healing it checks the recorded histories ([`check_register`] and the rest) and
//! returns a [`Report`] whose `violations` must be empty.
//!
//! The seed fixes the fault schedule and every choice the workload makes; timing (when a
//! leader is elected, which request lands during a fault) is the real system's.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::harness::wait_for;
use crate::openai_fake::OpenAiFake;

/// A xorshift64* generator: tiny, deterministic and good enough to pick faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        // SplitMix64 step so nearby seeds start far apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A duration in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi.saturating_sub(lo) + 1))
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Which voter a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Whoever leads when the fault starts.
    Leader,
    /// A voter that does not lead when the fault starts.
    Follower,
}

/// One fault the nemesis injects, held for `hold` and then healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, then a restart on the same data directory.
    KillRestart(Target),
    /// SIGSTOP of the leader, then SIGCONT.
    PauseLeader,
    /// The voter is cut from both other voters (both directions), then healed.
    Partition(Target),
    /// Every byte to and from the voter's peer port is held this long.
    Delay(Target, Duration),
    /// Every voter is killed, then all restart.
    Outage,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillRestart(t) => write!(f, "kill-restart({t:?})"),
            Fault::PauseLeader => write!(f, "pause(Leader)"),
            Fault::Partition(t) => write!(f, "partition({t:?})"),
            Fault::Delay(t, d) => write!(f, "delay({t:?},{}ms)", d.as_millis()),
            Fault::Outage => write!(f, "outage"),
        }
    }
}

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// Faults injected, one after the other.
    pub faults: usize,
    /// Quiet time before the first and after each fault.
    pub settle: Duration,
    /// Client request deadline; a request without an answer by then has hung.
    pub request_deadline: Duration,
    /// Admin call deadline; an unanswered write is indeterminate.
    pub admin_deadline: Duration,
    /// Bound on how long an edge may accept a revoked key after the revocation was acknowledged.
    pub revocation_bound: Duration,
    /// Count a revoked key accepted late behind a cut-off voter (`Report::known`) as a
    /// violation, as every other late acceptance is. On by default; off only to compare with
    /// edges that follow a single voter.
    pub strict: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            faults: 3,
            settle: Duration::from_millis(800),
            request_deadline: Duration::from_secs(5),
            admin_deadline: Duration::from_secs(3),
            revocation_bound: Duration::from_secs(2),
            strict: true,
        }
    }
}

/// The fault schedule for `seed`: the same seed always gives the same faults.
pub fn schedule(seed: u64, faults: usize) -> Vec<(Fault, Duration)> {
    let mut rng = Rng::new(seed);
    (0..faults)
        .map(|_| {
            let target = if rng.chance(50) {
                Target::Leader
            } else {
                Target::Follower
            };
            let fault = match rng.below(5) {
                0 => Fault::KillRestart(target),
                1 => Fault::PauseLeader,
                2 => Fault::Partition(target),
                3 => Fault::Delay(target, rng.millis(50, 300)),
                _ => Fault::Outage,
            };
            (fault, rng.millis(1_500, 3_000))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The register checker (pure).

/// One operation on a single register, as the client saw it. Times are since the run started.
#[derive(Debug, Clone, PartialEq)]
pub enum RegOp {
    /// A write of a value no other write uses. `complete` is `None` when the answer never came
    /// (a timeout or a cut connection): the write may or may not have taken effect, at any time
    /// after `invoke`.
    Write {
        /// The value written.
        value: u64,
        /// When it was sent.
        invoke: Duration,
        /// When it was acknowledged.
        complete: Option<Duration>,
    },
    /// A read that answered `value` (`None`: the register did not exist).
    Read {
        /// The value read.
        value: Option<u64>,
        /// When it was sent.
        invoke: Duration,
        /// When it answered.
        complete: Duration,
    },
}

/// Checks a single-register history with unique written values against linearizability's
/// real-time conditions: every read returns the initial value or a value some write sent before
/// the read completed; no read returns a value overwritten by a write acknowledged before the
/// read began (stale read); and no read returns a value older than one an earlier-completed read
/// already returned (reads never go back). Failed writes (answered with an error) must not be in
/// the history. Returns one line per violation.
pub fn check_register(key: &str, ops: &[RegOp]) -> Vec<String> {
    struct W {
        invoke: Duration,
        complete: Option<Duration>,
    }
    let writes: BTreeMap<u64, W> = ops
        .iter()
        .filter_map(|op| match op {
            RegOp::Write {
                value,
                invoke,
                complete,
            } => Some((
                *value,
                W {
                    invoke: *invoke,
                    complete: *complete,
                },
            )),
            RegOp::Read { .. } => None,
        })
        .collect();
    // `a` strictly precedes `b` in real time: a was acknowledged before b was sent. The initial
    // value (None) precedes every write.
    let precedes = |a: Option<u64>, b: Option<u64>| -> bool {
        match (a, b) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(b)) => match (writes.get(&a), writes.get(&b)) {
                (Some(wa), Some(wb)) => wa.complete.is_some_and(|c| c < wb.invoke),
                _ => false,
            },
        }
    };
    let reads: Vec<(Option<u64>, Duration, Duration)> = ops
        .iter()
        .filter_map(|op| match op {
            RegOp::Read {
                value,
                invoke,
                complete,
            } => Some((*value, *invoke, *complete)),
            RegOp::Write { .. } => None,
        })
        .collect();
    let mut violations = Vec::new();
    let show = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
    for (value, invoke, complete) in &reads {
        if let Some(v) = value {
            match writes.get(v) {
                None => violations.push(format!("{key}: read {v} that no write sent")),
                Some(w) if w.invoke > *complete => violations.push(format!(
                    "{key}: read {v} at {complete:?}, before its write was sent at {:?}",
                    w.invoke
                )),
                Some(_) => {}
            }
        }
        // Stale: a write acknowledged before this read began overwrote what it returned.
        for (w, ww) in &writes {
            if ww.complete.is_some_and(|c| c < *invoke) && precedes(*value, Some(*w)) {
                violations.push(format!(
                    "{key}: stale read of {} at {invoke:?}..{complete:?}: write {w} was acknowledged at {:?}",
                    show(*value),
                    ww.complete.unwrap_or_default()
                ));
                break;
            }
        }
    }
    // Reads never go back in time.
    for (a_value, _, a_complete) in &reads {
        for (b_value, b_invoke, _) in &reads {
            if a_complete < b_invoke && precedes(*b_value, *a_value) {
                violations.push(format!(
                    "{key}: read {} (began {b_invoke:?}) went back from {} (returned by {a_complete:?})",
                    show(*b_value),
                    show(*a_value)
                ));
            }
        }
    }
    violations
}

// ---------------------------------------------------------------------------------------------
// Recording.

/// How one client request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with a chat completion body.
    Success,
    /// An error status with an OpenAI error body (`error.message` and `error.type`).
    WellFormedError(u16),
    /// Anything else: a 200 without choices, an error without the OpenAI shape, a broken
    /// connection.
    Malformed(String),
    /// No answer before the deadline.
    Hung,
}

#[derive(Debug, Clone)]
struct Request {
    edge: usize,
    /// `None`: the key that is never revoked.
    key: Option<String>,
    start: Duration,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
struct Revocable {
    id: String,
    secret: String,
    /// When the revocation was acknowledged (None: not revoked, or the answer never came).
    revoked_ack: Option<Duration>,
}

#[derive(Default)]
struct History {
    requests: Vec<Request>,
    registers: BTreeMap<String, Vec<RegOp>>,
    /// Acknowledged key creations: id → acknowledged revoked.
    keys: BTreeMap<String, bool>,
    revocable: Vec<Revocable>,
    /// Table versions each edge reported, in order.
    versions: [Vec<u64>; 2],
    faults: Vec<String>,
    /// When each voter was cut off, killed or paused: (voter, from, to).
    partitions: Vec<(u64, Duration, Duration)>,
    /// When every voter was down at once: (from, to), `to` once all were restarted.
    outages: Vec<(Duration, Duration)>,
    write_attempts: u64,
    writes_acked: u64,
    writes_failed: u64,
    writes_indeterminate: u64,
    write_errors: BTreeMap<String, u64>,
}

type Shared = Arc<Mutex<History>>;

fn lock(h: &Shared) -> std::sync::MutexGuard<'_, History> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one run did and found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The faults injected, in order.
    pub faults: Vec<String>,
    /// Client requests sent through the edges.
    pub requests: usize,
    /// Of which answered 200.
    pub successes: usize,
    /// Of which answered a well-formed error.
    pub errors: usize,
    /// Admin register writes sent / acknowledged / answered with an error / timed out (the last
    /// two are kept in the history as writes that may or may not have happened).
    pub writes: (u64, u64, u64, u64),
    /// Register reads checked.
    pub reads: usize,
    /// Acknowledged writes and key creations verified on every voter after healing.
    pub acked_verified: usize,
    /// Keys revoked (acknowledged).
    pub revocations: usize,
    /// Requests made with a key after its revocation was acknowledged.
    pub after_revocation: usize,
    /// Table versions observed across both edges.
    pub versions_seen: usize,
    /// Why writes answered errors: message (digits dropped) → count.
    pub write_errors: BTreeMap<String, u64>,
    /// Revoked keys accepted late by an edge whose first voter was partitioned at the time,
    /// when the run is not `strict` (then listed here apart from `violations`). Edges move to
    /// another voter when theirs loses contact with the leader, so strict runs expect none.
    pub known: Vec<String>,
    /// Revoked keys accepted late because every voter went down before the revocation could
    /// reach the edge: the outage began within the bound after the acknowledgement, and the
    /// request came before the bound had passed again after the outage ended. No voter was up
    /// to tell the edge, and an edge keeps serving its last table while none is.
    pub outage_grace: usize,
    /// Every broken property, one line each; empty when the run passed.
    pub violations: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} faults [{}] known {} outage-grace {} requests {} (ok {}, errors {}) writes sent/acked/refused/unknown {:?} reads {} acked-verified {} revocations {} post-revocation requests {} versions {} violations {} in {:.1?}",
            self.seed,
            self.faults.join(", "),
            self.known.len(),
            self.outage_grace,
            self.requests,
            self.successes,
            self.errors,
            self.writes,
            self.reads,
            self.acked_verified,
            self.revocations,
            self.after_revocation,
            self.versions_seen,
            self.violations.len(),
            self.elapsed
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

const REGISTERS: [&str; 2] = ["reg-a", "reg-b"];
const MODEL: &str = "nemesis-model";

fn register_value(url: &str) -> Option<u64> {
    url.strip_prefix("http://10.0.0.1:8000/v")?
        .strip_suffix("/v1")?
        .parse()
        .ok()
}

fn admin_clients(cluster: &Cluster) -> anyhow::Result<Vec<AdminClient>> {
    let mut clients = Vec::new();
    for v in &cluster.voters {
        let url = v.admin_url()?;
        clients.push(AdminClient::new(&url, crate::cluster::ADMIN_TOKEN)?);
    }
    Ok(clients)
}

async fn leader(cluster: &Cluster) -> Option<u64> {
    cluster
        .statuses()
        .await
        .into_iter()
        .find(|(_, s)| s.role == "leader")
        .map(|(id, _)| id)
}

/// Runs one seeded scenario and returns what it did and found. An `Err` means the harness
/// itself could not run (a process would not start), not that a property broke.
pub async fn run(seed: u64, cfg: RunConfig) -> anyhow::Result<Report> {
    let began = Instant::now();
    let t0 = tokio::time::Instant::now();
    let at = move || t0.elapsed();
    let mut rng = Rng::new(seed ^ 0x5EED);
    let plan = schedule(seed, cfg.faults);

    let mut cluster = Cluster::start(3, true).await?;
    cluster.wait_leader(Duration::from_secs(10)).await?;
    let admins = admin_clients(&cluster)?;
    let fake = OpenAiFake::start().await?;
    let first = &admins[0];
    first
        .add_endpoint(&NewEndpoint {
            id: "upstream".into(),
            url: fake.base_url(),
            models: vec![MODEL.into()],
            ..Default::default()
        })
        .await
        .context("adding the upstream")?;
    let main_key = first
        .create_key(&NewKey {
            name: "traffic".into(),
            ..Default::default()
        })
        .await
        .context("creating the traffic key")?;
    let history: Shared = Arc::new(Mutex::new(History::default()));
    lock(&history).keys.insert(main_key.key.id.clone(), false);

    // Two edges, following voters 1 and 2 first and the other voters after them.
    let (stop, stopped) = watch::channel(false);
    // The edges stop only after the checks: stopping them with the workload would fail the
    // requests in flight at that moment.
    let (stop_edges, edges_stopped) = watch::channel(false);
    let mut edges: Vec<SocketAddr> = Vec::new();
    let mut edge_tasks = Vec::new();
    for (i, voter) in [1u64, 2].into_iter().enumerate() {
        let listener = Cluster::listener().await?;
        edges.push(listener.local_addr()?);
        let mut urls = Vec::new();
        for v in std::iter::once(voter).chain((1..=3).filter(|v| *v != voter)) {
            urls.push(format!(
                "http://{}",
                cluster.voter(v).grpc().context("voter address")?
            ));
        }
        let cfg = switchyard_edge::Config {
            control_plane: urls.join(","),
            edge_name: format!("nemesis-{i}"),
            ..Default::default()
        };
        let mut until = edges_stopped.clone();
        edge_tasks.push(tokio::spawn(switchyard_edge::run(
            cfg,
            listener,
            async move {
                let _stop = until.wait_for(|s| *s).await;
            },
        )));
    }
    let http = reqwest::Client::builder()
        .timeout(cfg.request_deadline)
        .build()?;
    for edge in &edges {
        let (http, secret) = (http.clone(), main_key.secret.clone());
        wait_for(Duration::from_secs(15), "the edges to serve", || {
            let (http, secret) = (http.clone(), secret.clone());
            async move {
                matches!(chat(&http, *edge, &secret).await, Outcome::Success).then_some(())
            }
        })
        .await?;
    }

    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    // Client traffic: each edge, the traffic key and the revocable keys.
    for (i, edge) in edges.iter().copied().enumerate() {
        let (http, history, stopped) = (http.clone(), history.clone(), stopped.clone());
        let main = main_key.secret.clone();
        let mut rng = Rng::new(rng.next_u64());
        workers.push(tokio::spawn(async move {
            for _ in 0..100_000 {
                if *stopped.borrow() {
                    break;
                }
                let revocable = {
                    let h = lock(&history);
                    (!h.revocable.is_empty() && rng.chance(40)).then(|| {
                        let r = &h.revocable[rng.below(h.revocable.len() as u64) as usize];
                        (r.id.clone(), r.secret.clone())
                    })
                };
                let (key, secret) = match revocable {
                    Some((id, secret)) => (Some(id), secret),
                    None => (None, main.clone()),
                };
                let start = at();
                let outcome = chat(&http, edge, &secret).await;
                lock(&history).requests.push(Request {
                    edge: i,
                    key,
                    start,
                    outcome,
                });
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }));
    }
    // Table versions each edge serves.
    for (i, edge) in edges.iter().copied().enumerate() {
        let (http, history, stopped) = (http.clone(), history.clone(), stopped.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..100_000 {
                if *stopped.borrow() {
                    break;
                }
                if let Some(v) = table_version(&http, edge).await {
                    lock(&history).versions[i].push(v);
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    // Register writes and reads through a random voter, one operation at a time.
    {
        let (admins, history, stopped) = (admins.clone(), history.clone(), stopped.clone());
        let mut rng = Rng::new(rng.next_u64());
        let deadline = cfg.admin_deadline;
        workers.push(tokio::spawn(async move {
            let mut next = 1u64;
            for _ in 0..100_000 {
                if *stopped.borrow() {
                    break;
                }
                let key = REGISTERS[rng.below(REGISTERS.len() as u64) as usize];
                let client = &admins[rng.below(admins.len() as u64) as usize];
                if rng.chance(50) {
                    let value = next;
                    next += 1;
                    let invoke = at();
                    let body = NewEndpoint {
                        id: key.into(),
                        url: format!("http://10.0.0.1:8000/v{value}/v1"),
                        models: vec!["reg".into()],
                        ..Default::default()
                    };
                    let answer = tokio::time::timeout(deadline, client.add_endpoint(&body)).await;
                    let mut h = lock(&history);
                    h.write_attempts += 1;
                    // Anything but an acknowledgement leaves the write unknown: a voter that
                    // answers an error after forwarding may still see the write commit.
                    let complete = match answer {
                        Ok(Ok(_)) => {
                            h.writes_acked += 1;
                            Some(at())
                        }
                        Ok(Err(e)) => {
                            h.writes_failed += 1;
                            *h.write_errors
                                .entry(error_class(&e.to_string()))
                                .or_default() += 1;
                            None
                        }
                        Err(_) => {
                            h.writes_indeterminate += 1;
                            None
                        }
                    };
                    h.registers
                        .entry(key.into())
                        .or_default()
                        .push(RegOp::Write {
                            value,
                            invoke,
                            complete,
                        });
                } else {
                    let invoke = at();
                    if let Some(value) = read_register(client, key, deadline, true).await {
                        let complete = at();
                        lock(&history)
                            .registers
                            .entry(key.into())
                            .or_default()
                            .push(RegOp::Read {
                                value,
                                invoke,
                                complete,
                            });
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    // Client keys: create one, let traffic use it, revoke it.
    {
        let (admins, history, stopped) = (admins.clone(), history.clone(), stopped.clone());
        let mut rng = Rng::new(rng.next_u64());
        let deadline = cfg.admin_deadline;
        workers.push(tokio::spawn(async move {
            for n in 0..1_000 {
                if *stopped.borrow() {
                    break;
                }
                let client = &admins[rng.below(admins.len() as u64) as usize];
                let body = NewKey {
                    name: format!("revocable-{n}"),
                    ..Default::default()
                };
                let Ok(Ok(created)) =
                    tokio::time::timeout(deadline, client.create_key(&body)).await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                {
                    let mut h = lock(&history);
                    h.keys.insert(created.key.id.clone(), false);
                    h.revocable.push(Revocable {
                        id: created.key.id.clone(),
                        secret: created.secret.clone(),
                        revoked_ack: None,
                    });
                }
                tokio::time::sleep(rng.millis(300, 900)).await;
                // Revoke through any voter until acknowledged (bounded).
                for _ in 0..20 {
                    let client = &admins[rng.below(admins.len() as u64) as usize];
                    if let Ok(Ok(_)) =
                        tokio::time::timeout(deadline, client.revoke_key(&created.key.id)).await
                    {
                        let ack = at();
                        let mut h = lock(&history);
                        h.keys.insert(created.key.id.clone(), true);
                        if let Some(r) = h.revocable.iter_mut().find(|r| r.id == created.key.id) {
                            r.revoked_ack = Some(ack);
                        }
                        break;
                    }
                    if *stopped.borrow() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(rng.millis(200, 600)).await;
            }
        }));
    }

    // The nemesis.
    tokio::time::sleep(cfg.settle).await;
    for (fault, hold) in &plan {
        let current = leader(&cluster).await;
        let pick = |target: Target, rng: &mut Rng| -> u64 {
            let leader = current.unwrap_or(1);
            match target {
                Target::Leader => leader,
                Target::Follower => {
                    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
                    others[rng.below(others.len() as u64) as usize]
                }
            }
        };
        let label = match fault {
            Fault::KillRestart(t) => {
                let id = pick(*t, &mut rng);
                let from = at();
                cluster.kill(id);
                tokio::time::sleep(*hold).await;
                cluster.restart(id).await?;
                lock(&history).partitions.push((id, from, at()));
                format!("{fault}=voter {id}")
            }
            Fault::PauseLeader => {
                let id = pick(Target::Leader, &mut rng);
                let from = at();
                cluster.signal(id, "STOP")?;
                tokio::time::sleep(*hold).await;
                cluster.signal(id, "CONT")?;
                lock(&history).partitions.push((id, from, at()));
                format!("{fault}=voter {id}")
            }
            Fault::Partition(t) => {
                let id = pick(*t, &mut rng);
                let from = at();
                isolate(&cluster, id);
                tokio::time::sleep(*hold).await;
                heal(&cluster);
                lock(&history).partitions.push((id, from, at()));
                format!("{fault}=voter {id}")
            }
            Fault::Delay(t, delay) => {
                let id = pick(*t, &mut rng);
                if let Some(p) = cluster.voter(id).proxy() {
                    p.set_delay(*delay);
                }
                tokio::time::sleep(*hold).await;
                if let Some(p) = cluster.voter(id).proxy() {
                    p.set_delay(Duration::ZERO);
                }
                format!("{fault}=voter {id}")
            }
            Fault::Outage => {
                let from = at();
                for id in 1..=3 {
                    cluster.kill(id);
                }
                tokio::time::sleep(*hold).await;
                for id in 1..=3 {
                    cluster.restart(id).await?;
                }
                let to = at();
                let mut h = lock(&history);
                h.partitions.extend((1..=3).map(|id| (id, from, to)));
                h.outages.push((from, to));
                fault.to_string()
            }
        };
        tracing::info!(seed, fault = %label, hold_ms = hold.as_millis() as u64, "fault healed");
        lock(&history).faults.push(label);
        // Recovered before the next fault: a leader again.
        cluster.wait_leader(Duration::from_secs(20)).await?;
        tokio::time::sleep(cfg.settle).await;
    }

    // Stop the workload, heal everything, let the cluster converge.
    stop.send_replace(true);
    for w in workers {
        let _done = w.await;
    }
    heal(&cluster);
    for id in 1..=3 {
        if !cluster.voter(id).running() {
            cluster.restart(id).await?;
        }
    }
    cluster.wait_leader(Duration::from_secs(20)).await?;
    let mut violations = Vec::new();
    if let Err(e) = cluster.wait_converged(Duration::from_secs(30)).await {
        violations.push(format!("voters did not converge after healing: {e}"));
    }

    // Final reads of every register through every voter, into the register histories.
    let mut acked_verified = 0usize;
    for client in &admins {
        for key in REGISTERS {
            let invoke = at();
            // After convergence every voter's local state is current: these reads check that
            // each voter holds the last write.
            match read_register(client, key, cfg.admin_deadline, false).await {
                Some(value) => lock(&history)
                    .registers
                    .entry(key.into())
                    .or_default()
                    .push(RegOp::Read {
                        value,
                        invoke,
                        complete: at(),
                    }),
                None => violations.push(format!("{client:?} did not answer a final read")),
            }
        }
    }
    // Every acknowledged key creation and revocation is on every voter.
    let h = std::mem::take(&mut *lock(&history));
    for client in &admins {
        match tokio::time::timeout(cfg.admin_deadline, client.keys()).await {
            Ok(Ok(keys)) => {
                let have: BTreeMap<&str, bool> =
                    keys.iter().map(|k| (k.id.as_str(), k.revoked)).collect();
                for (id, revoked) in &h.keys {
                    match have.get(id.as_str()) {
                        None => violations.push(format!("{client:?} lost acknowledged key {id}")),
                        Some(false) if *revoked => violations.push(format!(
                            "{client:?} lost the acknowledged revocation of {id}"
                        )),
                        Some(_) => acked_verified += 1,
                    }
                }
            }
            _ => violations.push(format!("{client:?} did not list keys")),
        }
    }
    let mut reads = 0;
    for (key, ops) in &h.registers {
        reads += ops
            .iter()
            .filter(|o| matches!(o, RegOp::Read { .. }))
            .count();
        // Each voter's final read is a read after every write completed: the register check
        // covers "every acknowledged write is present" for registers.
        acked_verified += ops
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    RegOp::Write {
                        complete: Some(_),
                        ..
                    }
                )
            })
            .count()
            * admins.len();
        violations.extend(check_register(key, ops));
    }
    let mut report = Report {
        seed,
        faults: h.faults.clone(),
        requests: h.requests.len(),
        writes: (
            h.write_attempts,
            h.writes_acked,
            h.writes_failed,
            h.writes_indeterminate,
        ),
        reads,
        acked_verified,
        write_errors: h.write_errors.clone(),
        ..Default::default()
    };
    violations.extend(check_requests(
        &h,
        cfg.revocation_bound,
        cfg.strict,
        &mut report,
    ));
    for (i, versions) in h.versions.iter().enumerate() {
        report.versions_seen += versions.len();
        for pair in versions.windows(2) {
            if pair[1] < pair[0] {
                violations.push(format!(
                    "edge {i} table version went back from {} to {}",
                    pair[0], pair[1]
                ));
            }
        }
    }
    report.violations = violations;

    stop_edges.send_replace(true);
    for task in edge_tasks {
        let _done = task.await;
    }
    fake.stop();
    report.elapsed = began.elapsed();
    Ok(report)
}

/// By when every edge must refuse a key revoked at `ack`: one propagation `bound` later, unless
/// every voter went down before that; then one `bound` after they were all back.
fn revocation_deadline(
    outages: &[(Duration, Duration)],
    ack: Duration,
    bound: Duration,
) -> Duration {
    outages
        .iter()
        .filter(|(from, _)| *from >= ack && *from < ack + bound)
        .map(|(_, to)| *to + bound)
        .fold(ack + bound, Duration::max)
}

/// Client-request checks: no hang, every answer well-formed, no revoked key accepted late.
fn check_requests(h: &History, bound: Duration, strict: bool, report: &mut Report) -> Vec<String> {
    let mut violations = Vec::new();
    let revoked: BTreeMap<&str, Duration> = h
        .revocable
        .iter()
        .filter_map(|r| r.revoked_ack.map(|at| (r.id.as_str(), at)))
        .collect();
    report.revocations = revoked.len();
    let mut hung = 0;
    for r in &h.requests {
        match &r.outcome {
            Outcome::Success => report.successes += 1,
            Outcome::WellFormedError(_) => report.errors += 1,
            Outcome::Hung => hung += 1,
            Outcome::Malformed(what) => violations.push(format!(
                "edge {} answered a request at {:?} with {what}",
                r.edge, r.start
            )),
        }
        if let Some(ack) = r.key.as_deref().and_then(|k| revoked.get(k)) {
            if r.start > *ack {
                report.after_revocation += 1;
            }
            if r.start > *ack + bound
                && r.outcome == Outcome::Success
                && revocation_deadline(&h.outages, *ack, bound) >= r.start
            {
                report.outage_grace += 1;
                continue;
            }
            // Edge i follows voter i + 1.
            let voter_cut = h.partitions.iter().any(|(v, from, to)| {
                *v == r.edge as u64 + 1 && *from < r.start && *to + bound > *ack
            });
            if r.start > *ack + bound && r.outcome == Outcome::Success {
                let list = if voter_cut && !strict {
                    &mut report.known
                } else {
                    &mut violations
                };
                list.push(format!(
                    "edge {} accepted revoked key {} at {:?}, revocation acknowledged at {ack:?}",
                    r.edge,
                    r.key.as_deref().unwrap_or_default(),
                    r.start
                ));
            }
        }
        // The traffic key is never revoked: it must always work.
        if r.key.is_none() && matches!(r.outcome, Outcome::WellFormedError(_)) {
            violations.push(format!(
                "edge {} refused the valid traffic key at {:?}: {:?}",
                r.edge, r.start, r.outcome
            ));
        }
    }
    if hung > 0 {
        violations.push(format!("{hung} client requests hung past their deadline"));
    }
    violations
}

/// An error message with numbers and addresses blanked, to count errors by kind.
fn error_class(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    out.truncate(160);
    out
}

/// Reads register `key`: consistent (answered by the leader after a quorum check) or this
/// voter's local state. `None` when the voter did not answer.
async fn read_register(
    client: &AdminClient,
    key: &str,
    deadline: Duration,
    consistent: bool,
) -> Option<Option<u64>> {
    let list = if consistent {
        tokio::time::timeout(deadline, client.endpoints_consistent()).await
    } else {
        tokio::time::timeout(deadline, client.endpoints()).await
    };
    let list = list.ok()?.ok()?;
    Some(
        list.iter()
            .find(|e| e.id == key)
            .and_then(|e| register_value(&e.base_url)),
    )
}

async fn chat(http: &reqwest::Client, edge: SocketAddr, secret: &str) -> Outcome {
    let sent = http
        .post(format!("http://{edge}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&serde_json::json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Outcome::Hung,
        Err(e) => return Outcome::Malformed(format!("a transport error: {e}")),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) if e.is_timeout() => return Outcome::Hung,
        Err(e) => return Outcome::Malformed(format!("a broken body: {e}")),
    };
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if status.is_success() {
        return match json {
            Some(v) if v["choices"].is_array() => Outcome::Success,
            _ => Outcome::Malformed(format!(
                "200 without choices: {}",
                String::from_utf8_lossy(&body)
            )),
        };
    }
    match json {
        Some(v) if v["error"]["message"].is_string() && v["error"]["type"].is_string() => {
            Outcome::WellFormedError(status.as_u16())
        }
        _ => Outcome::Malformed(format!(
            "{status} without an OpenAI error body: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

async fn table_version(http: &reqwest::Client, edge: SocketAddr) -> Option<u64> {
    let response = http
        .get(format!("http://{edge}/health/readiness"))
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    body["table_version"].as_u64()
}

/// Cuts voter `id` from both other voters, both ways.
pub fn isolate(cluster: &Cluster, id: u64) {
    let others: Vec<u64> = (1..=3).filter(|o| *o != id).collect();
    let ip = cluster.voter(id).ip();
    for o in &others {
        if let Some(p) = cluster.voter(*o).proxy() {
            p.block(&[ip]);
        }
    }
    let ips: Vec<_> = others.iter().map(|o| cluster.voter(*o).ip()).collect();
    if let Some(p) = cluster.voter(id).proxy() {
        p.block(&ips);
    }
}

/// Removes every partition and delay.
pub fn heal(cluster: &Cluster) {
    for v in &cluster.voters {
        if let Some(p) = v.proxy() {
            p.heal();
            p.set_delay(Duration::ZERO);
        }
    }
}

/// The seeds to run: `SWITCHYARD_FAULT_SEED=S` runs just S; otherwise
/// `SWITCHYARD_FAULT_SEEDS=N` (default `default_count`) seeds starting at
/// `SWITCHYARD_FAULT_SEED_BASE` (default 1).
pub fn seeds_from_env(default_count: u64) -> Vec<u64> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(seed) = var("SWITCHYARD_FAULT_SEED") {
        return vec![seed];
    }
    let count = var("SWITCHYARD_FAULT_SEEDS").unwrap_or(default_count);
    let base = var("SWITCHYARD_FAULT_SEED_BASE").unwrap_or(1);
    (base..base.saturating_add(count)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_soon_after_a_revocation_moves_its_deadline() {
        let s = Duration::from_secs;
        let bound = s(2);
        type Outages<'a> = &'a [(Duration, Duration)];
        // (outages, ack) -> deadline
        let rows: [(Outages, Duration, Duration); 5] = [
            (&[], s(10), s(12)),
            // Began within the bound after the ack: the edge may learn of it only once the
            // voters are back.
            (&[(s(11), s(14))], s(10), s(16)),
            // Began before the revocation was acknowledged: the revocation was written by
            // the voters that came back; no grace.
            (&[(s(5), s(9))], s(10), s(12)),
            // Began after the bound had passed: the edge should have had it by then.
            (&[(s(12), s(15))], s(10), s(12)),
            // The latest of several counts.
            (&[(s(10), s(11)), (s(11), s(13))], s(10), s(15)),
        ];
        for (outages, ack, want) in rows {
            assert_eq!(
                revocation_deadline(outages, ack, bound),
                want,
                "{outages:?} ack {ack:?}"
            );
        }
    }
}
