//! The etcd client side of the backend: appending commands, following the log, holding the
//! leader key and compacting the log behind snapshots.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    LeaseKeepAliveStream, LeaseKeeper, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchOptions,
};
use serde::{Deserialize, Serialize};
use switchyard_proto::v1::RoutingTable;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

mod leader;

use super::keys::{self, Keys, Step};
use super::{EtcdSettings, EtcdStatus};
use crate::error::Error;
use crate::raft::{Member, RaftStatus};
use crate::seal::ClusterKey;
use crate::service::agent::now_ms;
use crate::state::{ClusterState, Command, Outcome};
use crate::table;

/// Log entries read per range request while catching up.
const PAGE: i64 = 500;
/// Appends retried after losing the race for a sequence number.
const APPEND_ATTEMPTS: u32 = 200;
/// How often etcd's status and members are read.
const OBSERVE_EVERY: Duration = Duration::from_secs(2);

/// The state at a sequence number, as stored under `<prefix>/snapshot`.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    seq: u64,
    state: ClusterState,
    #[serde(default)]
    at_ms: u64,
}

/// Who holds the leader key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    node_id: u64,
    addr: String,
}

struct Applied {
    seq: u64,
    state: ClusterState,
}

#[derive(Default)]
struct Observed {
    status: EtcdStatus,
    members: Vec<Member>,
    snapshot_at_ms: u64,
}

/// A writer waiting for the outcome of the entry it appended.
#[derive(Default)]
struct Wanted {
    waiters: usize,
    outcome: Option<Outcome>,
}

/// A leader-key lease and its keep-alive stream.
struct HeldLease {
    id: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Done,
    Gap,
}

struct Inner {
    client: Client,
    keys: Keys,
    settings: EtcdSettings,
    me: Holder,
    key: Option<Arc<ClusterKey>>,
    applied: Mutex<Applied>,
    applied_seq: watch::Sender<u64>,
    table: watch::Sender<Arc<RoutingTable>>,
    leader: watch::Sender<Option<Holder>>,
    wanted: StdMutex<HashMap<u64, Wanted>>,
    observed: StdMutex<Observed>,
    stop: watch::Sender<bool>,
    lease: StdMutex<Option<i64>>,
}

/// A control-plane node whose state lives in etcd. Clones share the node.
#[derive(Clone)]
pub struct EtcdConsensus {
    inner: Arc<Inner>,
    tasks: Arc<StdMutex<Vec<JoinHandle<()>>>>,
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read_file(field: &'static str, path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Config {
        field,
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

impl EtcdConsensus {
    /// Connects to etcd, loads the snapshot and replays the log after it, then follows the log.
    /// `addr` is the gRPC address agents and edges reach this node at. Fails with a clear
    /// error when etcd cannot be reached.
    pub async fn open(
        node_id: u64,
        addr: String,
        settings: EtcdSettings,
        key: Option<Arc<ClusterKey>>,
    ) -> Result<Self, Error> {
        settings.validate()?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        if let Some(user) = &settings.username {
            let password = match (&settings.password, &settings.password_env) {
                (Some(p), _) => p.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| Error::Config {
                    field: "etcd.password_env",
                    reason: format!("the environment variable {var} is not set"),
                })?,
                (None, None) => {
                    return Err(Error::Config {
                        field: "etcd.password",
                        reason: "a username needs a password".into(),
                    });
                }
            };
            options = options.with_user(user.clone(), password);
        }
        if settings.uses_tls() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &settings.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read_file("etcd.ca_file", ca)?));
            }
            if let (Some(cert), Some(private)) = (&settings.cert_file, &settings.key_file) {
                tls = tls.identity(Identity::from_pem(
                    read_file("etcd.cert_file", cert)?,
                    read_file("etcd.key_file", private)?,
                ));
            }
            if let Some(name) = &settings.tls_server_name {
                tls = tls.domain_name(name.clone());
            }
            options = options.with_tls(tls);
        }
        let endpoints = settings.endpoints.join(",");
        let client = tokio::time::timeout(
            timeout,
            Client::connect(settings.endpoints.clone(), Some(options)),
        )
        .await
        .map_err(|_| Error::Etcd(format!("cannot reach etcd at {endpoints}: timed out")))?
        .map_err(|e| Error::Etcd(format!("cannot reach etcd at {endpoints}: {e}")))?;

        let state = ClusterState::default();
        let (table, _) = watch::channel(Arc::new(compile(&state, key.as_deref())));
        let (applied_seq, _) = watch::channel(0);
        let (leader, _) = watch::channel(None);
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            client,
            keys: Keys::new(&settings.prefix),
            me: Holder {
                node_id,
                addr: addr.clone(),
            },
            observed: StdMutex::new(Observed {
                status: EtcdStatus {
                    endpoints: settings.endpoints.clone(),
                    prefix: settings.prefix.clone(),
                    ..Default::default()
                },
                ..Default::default()
            }),
            settings,
            key,
            applied: Mutex::new(Applied { seq: 0, state }),
            applied_seq,
            table,
            leader,
            wanted: StdMutex::new(HashMap::new()),
            stop,
            lease: StdMutex::new(None),
        });
        let revision = inner.catch_up().await?;
        inner.observe().await;
        let applied = *inner.applied_seq.borrow();
        tracing::info!(node_id, endpoints = %endpoints, prefix = %inner.settings.prefix, applied_seq = applied, revision, "following the command log in etcd");
        let tasks = vec![
            tokio::spawn(inner.clone().follow(revision)),
            tokio::spawn(inner.clone().campaign()),
            tokio::spawn(inner.clone().observe_loop()),
        ];
        Ok(Self {
            inner,
            tasks: Arc::new(StdMutex::new(tasks)),
        })
    }

    /// Appends `command` to the log and waits until this node applied it; answers its outcome.
    pub async fn write(&self, command: Command) -> Result<Outcome, Error> {
        self.inner.write(command).await
    }

    /// Like [`write`](Self::write), but only while this node holds the leader key (agents and
    /// the node-liveness watcher use it); `NotLeader` otherwise.
    pub async fn write_local(&self, command: Command) -> Result<Outcome, Error> {
        if !self.is_leader() {
            return Err(Error::NotLeader {
                leader: self.leader_addr(),
            });
        }
        self.inner.write(command).await
    }

    /// Whether this node holds the leader key now.
    pub fn is_leader(&self) -> bool {
        self.inner.leader.borrow().as_ref() == Some(&self.inner.me)
    }

    /// Follows whether this node holds the leader key.
    pub fn watch_leadership(&self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(self.is_leader());
        let mut holders = self.inner.leader.subscribe();
        let me = self.inner.me.clone();
        tokio::spawn(async move {
            loop {
                let leader = holders.borrow_and_update().as_ref() == Some(&me);
                tx.send_if_modified(|old| std::mem::replace(old, leader) != leader);
                tokio::select! {
                    changed = holders.changed() => if changed.is_err() { break },
                    () = tx.closed() => break,
                }
            }
        });
        rx
    }

    /// The gRPC address of the node holding the leader key, if known.
    pub fn leader_addr(&self) -> Option<String> {
        self.inner.leader.borrow().as_ref().map(|h| h.addr.clone())
    }

    /// Waits until some node holds the leader key, up to `timeout`; answers its node id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, Error> {
        let mut holders = self.inner.leader.subscribe();
        let found = tokio::time::timeout(timeout, holders.wait_for(Option::is_some)).await;
        match found {
            Ok(Ok(holder)) => holder
                .as_ref()
                .map(|h| h.node_id)
                .ok_or_else(|| Error::Etcd("no leader after waiting for one".into())),
            Ok(Err(_)) => Err(Error::Etcd("the node is shutting down".into())),
            Err(_) => Err(Error::Etcd(format!(
                "no node took the leader key in etcd within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// Roles, log progress and etcd's own status as this node sees them.
    pub fn status(&self) -> RaftStatus {
        let applied = *self.inner.applied_seq.borrow();
        let holder = self.inner.leader.borrow().clone();
        let observed = lock(&self.inner.observed);
        let mut etcd = observed.status.clone();
        etcd.applied_seq = applied;
        RaftStatus {
            node_id: self.inner.me.node_id,
            role: if holder.as_ref() == Some(&self.inner.me) {
                "leader"
            } else {
                "follower"
            }
            .into(),
            term: etcd.raft_term,
            leader_id: holder.as_ref().map(|h| h.node_id),
            leader_addr: holder.map(|h| h.addr),
            last_log_index: applied,
            commit_index: applied,
            applied_index: applied,
            snapshot_index: etcd.snapshot_seq,
            members: observed.members.clone(),
            etcd: Some(etcd),
        }
    }

    /// Milliseconds since the snapshot in etcd was written; `None` before the first.
    pub fn snapshot_age_ms(&self) -> Option<u64> {
        match lock(&self.inner.observed).snapshot_at_ms {
            0 => None,
            at => Some(now_ms().saturating_sub(at)),
        }
    }

    /// Writes a snapshot of the applied state now and deletes the log behind it.
    pub async fn snapshot_now(&self) -> Result<(), Error> {
        self.inner.snapshot(true).await.map(|_| ())
    }

    /// Follows the compiled routing table of the applied state.
    pub fn watch_table(&self) -> watch::Receiver<Arc<RoutingTable>> {
        self.inner.table.subscribe()
    }

    /// A copy of the applied state.
    pub async fn state(&self) -> ClusterState {
        self.inner.applied.lock().await.state.clone()
    }

    /// Runs `read` on the applied state without copying it.
    pub async fn with_state<R>(&self, read: impl FnOnce(&ClusterState) -> R) -> R {
        read(&self.inner.applied.lock().await.state)
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.me.node_id
    }

    /// Stops following the log and gives up the leader key, so another node takes it at once.
    pub async fn shutdown(self, timeout: Duration) {
        self.inner.stop.send_replace(true);
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            if tokio::time::timeout(timeout, task).await.is_err() {
                tracing::warn!("an etcd backend task did not stop in time");
            }
        }
        let lease = lock(&self.inner.lease).take();
        if let Some(id) = lease {
            let mut client = self.inner.client.clone();
            let revoked = tokio::time::timeout(timeout, client.lease_revoke(id)).await;
            if !matches!(revoked, Ok(Ok(_))) {
                tracing::debug!("could not give up the leader key; it expires with its lease");
            }
        }
        self.inner.leader.send_replace(None);
    }
}

impl Inner {
    /// Runs one etcd request with the configured deadline, noting whether etcd answered.
    async fn timed<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Error> {
        let limit = Duration::from_millis(self.settings.timeout_ms);
        let result = match tokio::time::timeout(limit, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("{e}")),
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        };
        let mut observed = lock(&self.observed);
        match result {
            Ok(value) => {
                observed.status.reachable = true;
                observed.status.last_error = None;
                Ok(value)
            }
            Err(reason) => {
                observed.status.reachable = false;
                observed.status.last_error = Some(reason.clone());
                Err(Error::Etcd(format!(
                    "{what}: etcd at {} is unreachable or refused: {reason}",
                    self.settings.endpoints.join(",")
                )))
            }
        }
    }

    fn note_revision(&self, revision: i64) {
        let mut observed = lock(&self.observed);
        observed.status.revision = observed.status.revision.max(revision);
    }

    async fn write(&self, command: Command) -> Result<Outcome, Error> {
        let body = serde_json::to_vec(&command)
            .map_err(|e| Error::Etcd(format!("cannot encode the command: {e}")))?;
        let seq = self.append(body).await?;
        let limit = Duration::from_millis(self.settings.timeout_ms.saturating_mul(2));
        let mut applied = self.applied_seq.subscribe();
        let reached = tokio::time::timeout(limit, applied.wait_for(|s| *s >= seq)).await;
        let outcome = self.unwant(seq);
        match reached {
            Ok(Ok(_)) => outcome.ok_or_else(|| {
                Error::Etcd(format!(
                    "command {seq} was applied from a snapshot; its outcome is unknown"
                ))
            }),
            Ok(Err(_)) => Err(Error::Etcd("the node is shutting down".into())),
            Err(_) => Err(Error::Etcd(format!(
                "command {seq} is committed in etcd but was not applied here within {} ms; it takes effect when this node catches up",
                limit.as_millis()
            ))),
        }
    }

    fn want(&self, seq: u64) {
        lock(&self.wanted).entry(seq).or_default().waiters += 1;
    }

    /// Drops one interest in `seq`; answers its outcome when it was applied.
    fn unwant(&self, seq: u64) -> Option<Outcome> {
        let mut wanted = lock(&self.wanted);
        let entry = wanted.get_mut(&seq)?;
        entry.waiters = entry.waiters.saturating_sub(1);
        let outcome = entry.outcome.clone();
        if entry.waiters == 0 {
            wanted.remove(&seq);
        }
        outcome
    }

    /// Appends `body` as the next log entry; answers its sequence number.
    async fn append(&self, body: Vec<u8>) -> Result<u64, Error> {
        let mut kv = self.client.kv_client();
        let counter = self.keys.next();
        let current = self
            .timed("reading the log counter", kv.get(counter.clone(), None))
            .await?;
        let mut next = keys::parse_next(current.kvs().first().map(|kv| kv.value()))
            .ok_or_else(|| Error::Etcd(format!("{counter} does not hold a number")))?;
        for _ in 0..APPEND_ATTEMPTS {
            let compare = if next == 1 {
                Compare::version(counter.clone(), CompareOp::Equal, 0)
            } else {
                Compare::value(counter.clone(), CompareOp::Equal, next.to_string())
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([
                    TxnOp::put(self.keys.log(next), body.clone(), None),
                    TxnOp::put(counter.clone(), (next + 1).to_string(), None),
                ])
                .or_else([TxnOp::get(counter.clone(), None)]);
            self.want(next);
            let response = match self.timed("appending a command", kv.txn(txn)).await {
                Ok(r) => r,
                Err(e) => {
                    self.unwant(next);
                    return Err(e);
                }
            };
            if let Some(h) = response.header() {
                self.note_revision(h.revision());
            }
            if response.succeeded() {
                return Ok(next);
            }
            self.unwant(next);
            next = keys::parse_next(got_value(&response).as_deref())
                .ok_or_else(|| Error::Etcd(format!("{counter} does not hold a number")))?;
        }
        Err(Error::Etcd(format!(
            "could not append after {APPEND_ATTEMPTS} attempts: too many concurrent writers"
        )))
    }

    /// Applies entries in order; stops at a gap.
    async fn apply(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<Progress, Error> {
        let mut applied = self.applied.lock().await;
        let revision = applied.state.revision;
        let mut result = Ok(Progress::Done);
        for (seq, body) in entries {
            match keys::step(applied.seq, seq) {
                Step::Skip => continue,
                Step::Gap => {
                    result = Ok(Progress::Gap);
                    break;
                }
                Step::Apply => {}
            }
            let command: Command = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(e) => {
                    result = Err(Error::Etcd(format!(
                        "log entry {seq} is not a command this version understands ({e}); stopped applying so this node does not diverge"
                    )));
                    break;
                }
            };
            let outcome = applied.state.apply(command);
            applied.seq = seq;
            if let Some(w) = lock(&self.wanted).get_mut(&seq) {
                w.outcome = Some(outcome);
            }
        }
        if applied.state.revision != revision {
            self.table
                .send_replace(Arc::new(compile(&applied.state, self.key.as_deref())));
        }
        let seq = applied.seq;
        self.applied_seq
            .send_if_modified(|s| std::mem::replace(s, seq) != seq);
        result
    }

    /// Installs the snapshot in etcd when it is ahead of this node; answers whether it did.
    async fn load_snapshot(&self) -> Result<bool, Error> {
        let mut kv = self.client.kv_client();
        let response = self
            .timed("reading the snapshot", kv.get(self.keys.snapshot(), None))
            .await?;
        let Some(stored) = response.kvs().first() else {
            return Ok(false);
        };
        let snapshot: Snapshot = serde_json::from_slice(stored.value())
            .map_err(|e| Error::Etcd(format!("the snapshot in etcd does not decode: {e}")))?;
        {
            let mut observed = lock(&self.observed);
            observed.status.snapshot_seq = snapshot.seq;
            observed.snapshot_at_ms = snapshot.at_ms;
        }
        let mut applied = self.applied.lock().await;
        if snapshot.seq <= applied.seq {
            return Ok(false);
        }
        tracing::info!(
            from = applied.seq,
            to = snapshot.seq,
            "installing the snapshot from etcd"
        );
        applied.seq = snapshot.seq;
        applied.state = snapshot.state;
        self.table
            .send_replace(Arc::new(compile(&applied.state, self.key.as_deref())));
        self.applied_seq.send_replace(snapshot.seq);
        Ok(true)
    }

    /// Reads the log after the applied sequence (installing the snapshot when entries were
    /// compacted away); answers the etcd revision to watch after.
    async fn catch_up(&self) -> Result<i64, Error> {
        let mut kv = self.client.kv_client();
        // A snapshot ahead of us saves replaying what it covers.
        self.load_snapshot().await?;
        // Bounded: each round applies entries or installs a newer snapshot, else stops.
        for _ in 0..1_000_000u32 {
            let from = *self.applied_seq.borrow() + 1;
            let options = GetOptions::new()
                .with_range(self.keys.log_end())
                .with_limit(PAGE);
            let response = self
                .timed(
                    "reading the log",
                    kv.get(self.keys.log(from), Some(options)),
                )
                .await?;
            let revision = response.header().map_or(0, |h| h.revision());
            self.note_revision(revision);
            let entries: Vec<(u64, Vec<u8>)> = response
                .kvs()
                .iter()
                .filter_map(|kv| Some((self.keys.seq_of(kv.key())?, kv.value().to_vec())))
                .collect();
            if entries.is_empty() {
                if self.load_snapshot().await? {
                    continue;
                }
                return Ok(revision);
            }
            if self.apply(entries).await? == Progress::Gap && !self.load_snapshot().await? {
                return Err(Error::Etcd(format!(
                    "log entries after {} are missing in etcd and no snapshot covers them",
                    from - 1
                )));
            }
            if !response.more() && *self.applied_seq.borrow() >= from {
                return Ok(revision);
            }
        }
        Err(Error::Etcd("the log did not end while catching up".into()))
    }

    /// Follows the log until stopped: a watch from `revision`, and on any interruption a
    /// catch-up read and a new watch.
    async fn follow(self: Arc<Self>, mut revision: i64) {
        let mut stop = self.stop.subscribe();
        loop {
            let ended = tokio::select! {
                r = self.watch_log(revision + 1) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match ended {
                Ok(()) => tracing::info!("the etcd watch ended; catching up"),
                Err(e) => tracing::warn!(error = %e, "the etcd watch broke; catching up"),
            }
            for attempt in 0u32.. {
                let delay = Duration::from_millis(100u64 << attempt.min(4));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match self.catch_up().await {
                    Ok(r) => {
                        revision = r;
                        break;
                    }
                    Err(e) if attempt % 10 == 0 => {
                        tracing::warn!(error = %e, attempt, "cannot catch up with the log in etcd; retrying (serving the last table)");
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// Applies log entries as the watch delivers them; returns when the watch ends.
    async fn watch_log(&self, start: i64) -> Result<(), Error> {
        let mut client = self.client.clone();
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut stream = self
            .timed(
                "watching the log",
                client.watch(self.keys.log_prefix(), Some(options)),
            )
            .await?;
        loop {
            let Some(response) = stream
                .message()
                .await
                .map_err(|e| Error::Etcd(format!("the log watch failed: {e}")))?
            else {
                return Ok(());
            };
            if response.canceled() || response.compact_revision() > 0 {
                return Err(Error::Etcd(format!(
                    "etcd canceled the log watch (compacted to {}): {}",
                    response.compact_revision(),
                    response.cancel_reason()
                )));
            }
            if let Some(h) = response.header() {
                self.note_revision(h.revision());
            }
            let entries: Vec<(u64, Vec<u8>)> = response
                .events()
                .iter()
                .filter(|e| e.event_type() == EventType::Put)
                .filter_map(|e| e.kv())
                .filter_map(|kv| Some((self.keys.seq_of(kv.key())?, kv.value().to_vec())))
                .collect();
            if !entries.is_empty() && self.apply(entries).await? == Progress::Gap {
                return Err(Error::Etcd("the watch skipped log entries".into()));
            }
        }
    }
}

/// The value read by a transaction's `or_else` get, when the key exists.
fn got_value(response: &TxnResponse) -> Option<Vec<u8>> {
    got_kv(response).map(|(_, value)| value)
}

/// The (lease, value) of the key read by a transaction's `or_else` get.
fn got_kv(response: &TxnResponse) -> Option<(i64, Vec<u8>)> {
    response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get
            .kvs()
            .first()
            .map(|kv| (kv.lease(), kv.value().to_vec())),
        _ => None,
    })
}

/// Compiles the table, naming credentials the cluster key cannot open.
fn compile(state: &ClusterState, key: Option<&ClusterKey>) -> RoutingTable {
    let compiled = table::compile(state, key);
    for credential in &compiled.unopened {
        tracing::warn!(credential = %credential, "a stored credential does not open with this node's cluster key; edges will not get it");
    }
    compiled.table
}
