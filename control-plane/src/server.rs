//! Starts a control-plane voter: its raft node and gRPC services on one listener, the admin API
//! on another, the node-liveness watcher and the declared configuration.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use switchyard_proto::tls::{TlsError, TlsFiles};
use switchyard_proto::v1::agent_service_server::AgentServiceServer;
use switchyard_proto::v1::edge_service_server::EdgeServiceServer;
use switchyard_proto::v1::lease_service_server::LeaseServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::admin::views::ReloadReport;
use crate::admin::{self, AdminState, Tokens};
use crate::catalog::{Auditor, Catalogue, probe, refresh};
use crate::error::Error;
use crate::etcd::{BackendKind, EtcdSettings};
use crate::liveness::{self, DownPolicy, Liveness};
use crate::raft::{Consensus, RaftSettings};
use crate::reload::{Declarations, EnvSource};
use crate::seal::{self, ClusterKey};
use crate::service::agent::AgentServer;
use crate::service::edge::EdgeServer;
use crate::service::lease::LeaseServer;
use crate::state::{ClusterState, Command, Outcome};

/// How a voter runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Raft node id, unique in the cluster. Default 1.
    pub node_id: u64,
    /// Directory holding the durable log and state (`raft.redb`). Default `./switchyard-data`.
    pub data_dir: PathBuf,
    /// Address peers, agents and edges reach this voter at (`host:port`). Default: the bound
    /// listener's address.
    pub advertise_addr: Option<String>,
    /// Secret agents must present; `None` accepts any agent. Default `None`.
    pub join_token: Option<String>,
    /// Initialise the cluster when the data directory is fresh. Default true (ignored with
    /// `join`).
    pub bootstrap: bool,
    /// gRPC address of a voter of an existing cluster to join (added as learner, then promoted).
    /// Default none.
    pub join: Option<String>,
    /// Other voters of the cluster to bootstrap with (raft id → gRPC address); empty starts a
    /// one-voter cluster that grows through `members add`. Used only at bootstrap.
    pub initial_members: BTreeMap<u64, String>,
    /// Leader heartbeat interval in ms. Default 150.
    pub heartbeat_ms: u64,
    /// Election timeout lower bound in ms. Default 500.
    pub election_min_ms: u64,
    /// Election timeout upper bound in ms. Default 1000.
    pub election_max_ms: u64,
    /// Build a snapshot after this many log entries. Default 5000.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot for lagging followers. Default 1000.
    pub keep_logs: u64,
    /// Source IP for connections to peer voters. Default: chosen by the OS.
    pub peer_bind_ip: Option<IpAddr>,
    /// A node silent this long (ms) is committed as down. Default 15000.
    pub node_down_after_ms: u64,
    /// After becoming leader, wait this long (ms) before marking any node down. Default 15000.
    pub leader_grace_ms: u64,
    /// Tokens that may read and write the admin API. Default: one generated token kept in
    /// `<data_dir>/admin.token`.
    pub admin_tokens: Vec<String>,
    /// Tokens that may only read the admin API. Default none.
    pub read_only_tokens: Vec<String>,
    /// The cluster key (base64url, 32 bytes) sealing credentials stored by value. Default: read
    /// from `cluster_key_file`.
    pub cluster_key: Option<String>,
    /// File holding the cluster key. Default `<data_dir>/cluster.key`, created at bootstrap.
    pub cluster_key_file: Option<PathBuf>,
    /// `config.yaml` (ours or LiteLLM's) to load at start and on reload. Default none.
    pub config_file: Option<PathBuf>,
    /// The environment `LLM_PROXY_ENDPOINT_*` is read from. Default: this process's.
    #[serde(skip)]
    pub env: Option<BTreeMap<String, String>>,
    /// Announce this voter on the LAN as `_switchyard._tcp.local.` so agents started without
    /// `--control-plane` find it. Default true.
    pub mdns: bool,
    /// Where the state lives: `raft` (embedded, the default) or `etcd` (an existing etcd
    /// cluster; needs a build with the `etcd` feature and the `etcd` settings).
    pub backend: BackendKind,
    /// The etcd cluster, with `backend: etcd`. Default none.
    pub etcd: Option<EtcdSettings>,
    /// CA certificate (PEM) for mutual TLS on the gRPC listener and to peers: only clients
    /// with a certificate it signed get in. Set all three `tls_*` or none. Default none
    /// (plaintext).
    pub tls_ca: Option<PathBuf>,
    /// This voter's certificate (PEM), e.g. from `switchyard certs init`. Default none.
    pub tls_cert: Option<PathBuf>,
    /// This voter's private key (PEM). Default none.
    pub tls_key: Option<PathBuf>,
    /// Certificate chain (PEM) to serve the admin API over HTTPS with; set both `https_*` or
    /// neither. Reread when the file changes. Default none (plain HTTP).
    pub https_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key (PEM). Default none.
    pub https_key: Option<PathBuf>,
    /// How long usage is kept per granularity (minutes 2 h, hours 7 days, days 400 days by
    /// default); the leader compacts with the retention of the voter that took the batch.
    pub usage_retention: crate::state::Retention,
    /// Seconds between the leader's listings of catalogued endpoints (declared without a model
    /// list, or with a `catalog` filter); 0 lists only on demand. Default 300.
    pub catalog_refresh_secs: u64,
    /// Seconds between scheduled audits (a 1-token chat per model × credential, dead models
    /// pruned from the served set); 0, the default, audits only on demand.
    pub catalog_audit_secs: u64,
    /// Seconds a failed probe is not repeated. Default 3600.
    pub catalog_failure_ttl_secs: u64,
    /// Recent routing-table deltas kept for edges that fall behind or fail over to this voter
    /// (at most 8 MiB of them); an edge whose version is older gets the full table. Default 256.
    pub table_deltas_kept: usize,
}

impl Default for Config {
    fn default() -> Self {
        let raft = RaftSettings::default();
        Self {
            node_id: 1,
            data_dir: PathBuf::from("switchyard-data"),
            advertise_addr: None,
            join_token: None,
            bootstrap: true,
            join: None,
            initial_members: BTreeMap::new(),
            heartbeat_ms: raft.heartbeat_ms,
            election_min_ms: raft.election_min_ms,
            election_max_ms: raft.election_max_ms,
            snapshot_every: raft.snapshot_every,
            keep_logs: raft.keep_logs,
            peer_bind_ip: None,
            node_down_after_ms: 15_000,
            leader_grace_ms: 15_000,
            admin_tokens: Vec::new(),
            read_only_tokens: Vec::new(),
            cluster_key: None,
            cluster_key_file: None,
            config_file: None,
            env: None,
            mdns: true,
            backend: BackendKind::Raft,
            etcd: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            https_cert: None,
            https_key: None,
            usage_retention: crate::state::Retention::default(),
            catalog_refresh_secs: 300,
            table_deltas_kept: crate::service::table_ring::DEFAULT_DELTAS,
            catalog_audit_secs: 0,
            catalog_failure_ttl_secs: 3_600,
        }
    }
}

impl Config {
    /// Checks the fields before anything binds or opens.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: &str| {
            Err(Error::Config {
                field,
                reason: reason.into(),
            })
        };
        if self.node_id == 0 {
            return bad("node_id", "must be at least 1");
        }
        if self.heartbeat_ms == 0 {
            return bad("heartbeat_ms", "must be at least 1");
        }
        if self.election_min_ms <= self.heartbeat_ms || self.election_max_ms <= self.election_min_ms
        {
            return bad(
                "election_min_ms",
                "need heartbeat_ms < election_min_ms < election_max_ms",
            );
        }
        if self.join_token.as_deref() == Some("") {
            return bad("join_token", "is empty; omit it to accept any agent");
        }
        if self.snapshot_every == 0 {
            return bad("snapshot_every", "must be at least 1");
        }
        if self.node_down_after_ms == 0 {
            return bad("node_down_after_ms", "must be at least 1");
        }
        if self.initial_members.contains_key(&0) {
            return bad("initial_members", "raft ids start at 1");
        }
        if self
            .admin_tokens
            .iter()
            .chain(&self.read_only_tokens)
            .any(|t| t.len() < 16)
        {
            return bad("admin_tokens", "every token needs at least 16 characters");
        }
        if let Some(text) = &self.cluster_key {
            ClusterKey::from_text(text)?;
        }
        if let Some(files) = self.tls_files()? {
            files.check().map_err(tls_error)?;
        }
        admin::https::acceptor(self)?;
        match (self.backend, &self.etcd) {
            (BackendKind::Etcd, None) => {
                return bad(
                    "etcd.endpoints",
                    "backend etcd needs the etcd settings (at least endpoints)",
                );
            }
            (BackendKind::Etcd, Some(etcd)) => {
                if !cfg!(feature = "etcd") {
                    return bad(
                        "backend",
                        "etcd needs a Switchyard built with the `etcd` cargo feature (cargo build --features etcd)",
                    );
                }
                etcd.validate()?;
                if self.join.is_some() || !self.initial_members.is_empty() {
                    return bad(
                        "join",
                        "with backend etcd there is no raft membership; start every node on the same etcd prefix instead",
                    );
                }
            }
            (BackendKind::Raft, Some(_)) => {
                return bad(
                    "backend",
                    "etcd settings are given but backend is raft; set backend: etcd to use them",
                );
            }
            (BackendKind::Raft, None) => {}
        }
        Ok(())
    }

    /// The mutual-TLS files, when all three `tls_*` fields are set.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, Error> {
        TlsFiles::from_fields(&self.tls_ca, &self.tls_cert, &self.tls_key).map_err(tls_error)
    }

    fn raft_settings(&self) -> RaftSettings {
        RaftSettings {
            heartbeat_ms: self.heartbeat_ms,
            election_min_ms: self.election_min_ms,
            election_max_ms: self.election_max_ms,
            snapshot_every: self.snapshot_every,
            keep_logs: self.keep_logs,
            peer_bind_ip: self.peer_bind_ip,
            // Checked by `validate` before anything opens.
            peer_tls: self.tls_files().ok().flatten(),
        }
    }
}

/// A running voter.
pub struct ControlPlane {
    consensus: Consensus,
    addr: String,
    admin_addr: Option<std::net::SocketAddr>,
    admin_token: String,
    declarations: Arc<Declarations>,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ControlPlane {
    /// Opens the store, starts raft and serves the gRPC services on `listener` (no admin API).
    pub async fn start(cfg: Config, listener: TcpListener) -> Result<Self, Error> {
        Self::start_with_admin(cfg, listener, None).await
    }

    /// Opens the store, starts raft, serves gRPC on `grpc` and the admin API on `admin`.
    ///
    /// A voter that bootstraps a one-voter cluster waits for itself to lead and applies the
    /// declared configuration before returning, so a bad config file fails the start. Any
    /// other voter applies it in the background once it knows a leader.
    ///
    /// The steps, in order: open storage, serve gRPC, start the watchers, serve the admin API,
    /// announce over mDNS, then bootstrap and settle (or join) the cluster.
    pub async fn start_with_admin(
        cfg: Config,
        grpc: TcpListener,
        admin: Option<TcpListener>,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        let local = grpc.local_addr()?;
        let addr = cfg
            .advertise_addr
            .clone()
            .unwrap_or_else(|| local.to_string());
        let (stop, stopped) = watch::channel(false);
        let parts = open_storage(&cfg, &addr, stopped).await?;
        let declarations = Arc::new(Declarations {
            file: cfg.config_file.clone(),
            env: cfg.env.clone().map_or(EnvSource::Process, EnvSource::Fixed),
            key: Some(parts.key.clone()),
        });
        let server = serve_grpc(&cfg, grpc, &parts).await?;
        let (mut tasks, catalogue, auditor) = start_watchers(&cfg, &parts);
        let admin_token = match cfg.admin_tokens.first() {
            Some(token) => token.clone(),
            None => admin_token_file(&cfg.data_dir)?,
        };
        let admin_addr = match admin {
            Some(listener) => {
                let at = listener.local_addr()?;
                let state = AdminState {
                    consensus: parts.consensus.clone(),
                    liveness: parts.liveness.clone(),
                    declarations: declarations.clone(),
                    key: Some(parts.key.clone()),
                    tokens: Arc::new(admin_tokens(&cfg, &admin_token)),
                    catalogue,
                    auditor,
                };
                let tls = admin::https::acceptor(&cfg)?;
                tasks.push(serve_admin(listener, state, tls, &parts.stopped));
                Some(at)
            }
            None => None,
        };
        if cfg.mdns {
            tasks.push(tokio::spawn(announce(
                cfg.node_id,
                addr.clone(),
                until(parts.stopped.clone()),
            )));
        }

        let bootstrap = cfg.bootstrap && cfg.join.is_none();
        let bootstrapped = if bootstrap {
            parts.consensus.bootstrap(&cfg.initial_members).await?
        } else {
            false
        };
        let mut control_plane = Self {
            consensus: parts.consensus.clone(),
            addr: addr.clone(),
            admin_addr,
            admin_token,
            declarations: declarations.clone(),
            stop,
            server,
            tasks,
        };
        if bootstrap && cfg.initial_members.is_empty() {
            settle_now(&parts.consensus, &declarations).await?;
            tracing::info!(node_id = cfg.node_id, addr = %addr, data_dir = %cfg.data_dir.display(), "control plane started");
        } else {
            control_plane.tasks.push(tokio::spawn(settle_later(
                parts.consensus,
                declarations,
                cfg.join.clone(),
                parts.stopped,
            )));
            tracing::info!(node_id = cfg.node_id, addr = %addr, bootstrapped, "control plane started; waiting for a leader");
        }
        Ok(control_plane)
    }

    /// Runs a voter until `shutdown` resolves.
    pub async fn run(
        cfg: Config,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let control_plane = Self::start_with_admin(cfg, listener, admin).await?;
        shutdown.await;
        control_plane.stop().await
    }

    /// The gRPC address agents and edges use.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Where the admin API listens, when it was started.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin_addr
    }

    /// An admin token this voter accepts (the generated one unless tokens were configured).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// This voter's raft machinery.
    pub fn consensus(&self) -> &Consensus {
        &self.consensus
    }

    /// Waits until a leader is known, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(), Error> {
        self.consensus.wait_for_leader(timeout).await.map(|_| ())
    }

    /// Proposes a command through raft (forwarded to the leader) and waits for it to apply.
    pub async fn write(&self, command: Command) -> Result<Outcome, Error> {
        self.consensus.write(command).await
    }

    /// Re-reads the config file and environment and applies the difference.
    pub async fn reload(&self) -> Result<ReloadReport, Error> {
        self.declarations.apply(&self.consensus).await
    }

    /// A copy of the applied state.
    pub async fn state(&self) -> ClusterState {
        self.consensus.state().await
    }

    /// Stops serving, ends open streams and stops the raft node.
    pub async fn stop(self) -> Result<(), Error> {
        self.stop.send_replace(true);
        let served = self.server.await;
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a control-plane task failed");
            }
        }
        self.consensus.shutdown(Duration::from_secs(5)).await;
        match served {
            Ok(result) => result.map_err(Error::from),
            Err(join) => Err(Error::Raft(format!("grpc server task failed: {join}"))),
        }
    }
}

/// What the start-up steps after storage share: the consensus, the cluster key, the liveness
/// table and the stop signal every task ends on.
struct Parts {
    consensus: Consensus,
    key: Arc<ClusterKey>,
    liveness: Liveness,
    stopped: watch::Receiver<bool>,
}

/// Step 1, open storage: the cluster key (given, or loaded from / created in the data
/// directory) and the consensus backend.
async fn open_storage(
    cfg: &Config,
    addr: &str,
    stopped: watch::Receiver<bool>,
) -> Result<Parts, Error> {
    let key = Arc::new(match &cfg.cluster_key {
        Some(text) => ClusterKey::from_text(text)?,
        None => {
            let path = cfg
                .cluster_key_file
                .clone()
                .unwrap_or_else(|| cfg.data_dir.join("cluster.key"));
            ClusterKey::load_or_create(&path, true)?
        }
    });
    let consensus = open_consensus(cfg, addr.to_owned(), key.clone()).await?;
    Ok(Parts {
        consensus,
        key,
        liveness: Liveness::default(),
        stopped,
    })
}

/// Step 2, serve gRPC on `grpc`: health, raft, the agent, edge and lease services, over mutual
/// TLS when configured. Ends when the stop signal turns.
async fn serve_grpc(
    cfg: &Config,
    grpc: TcpListener,
    parts: &Parts,
) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AgentServiceServer<AgentServer>>()
        .await;
    health.set_serving::<EdgeServiceServer<EdgeServer>>().await;
    let mut builder = tonic::transport::Server::builder();
    if let Some(files) = cfg.tls_files()? {
        let tls = files.server_config().map_err(tls_error)?;
        builder = builder.tls_config(tls).map_err(|e| Error::Config {
            field: "tls_cert",
            reason: e.to_string(),
        })?;
    }
    let consensus = &parts.consensus;
    let router = builder
        .add_service(health_service)
        .add_optional_service(consensus.raft_service())
        .add_service(AgentServiceServer::new(AgentServer::new(
            consensus.clone(),
            cfg.join_token.clone(),
            parts.liveness.clone(),
            parts.stopped.clone(),
        )))
        .add_service(EdgeServiceServer::new(
            EdgeServer::new(consensus.clone(), parts.stopped.clone())
                .with_delta_ring(
                    cfg.table_deltas_kept,
                    crate::service::table_ring::DEFAULT_BYTES,
                )
                .with_usage_retention(cfg.usage_retention),
        ))
        .add_service(LeaseServiceServer::new(LeaseServer::new(consensus.clone())));
    Ok(tokio::spawn(router.serve_with_incoming_shutdown(
        TcpListenerStream::new(grpc),
        until(parts.stopped.clone()),
    )))
}

/// Step 3, start the watchers: node liveness, endpoint health, and the catalog's refresh and
/// audit when their intervals are not zero. Returns the tasks and the catalog handles the admin
/// API serves.
fn start_watchers(cfg: &Config, parts: &Parts) -> (Vec<JoinHandle<()>>, Catalogue, Auditor) {
    let (consensus, key, stopped) = (&parts.consensus, &parts.key, &parts.stopped);
    let mut tasks = vec![
        tokio::spawn(liveness::watch_nodes(
            consensus.clone(),
            parts.liveness.clone(),
            DownPolicy {
                down_after_ms: cfg.node_down_after_ms,
                leader_grace_ms: cfg.leader_grace_ms,
            },
            stopped.clone(),
        )),
        tokio::spawn(crate::health::watch_endpoints(
            consensus.clone(),
            Some(key.clone()),
            stopped.clone(),
        )),
    ];
    let catalogue = Catalogue::new(consensus.clone(), Some(key.clone()));
    if cfg.catalog_refresh_secs > 0 {
        tasks.push(tokio::spawn(refresh::run(
            catalogue.clone(),
            Duration::from_secs(cfg.catalog_refresh_secs),
            stopped.clone(),
        )));
    }
    let auditor = Auditor::new(
        consensus.clone(),
        Some(key.clone()),
        cfg.catalog_failure_ttl_secs.saturating_mul(1_000),
    );
    if cfg.catalog_audit_secs > 0 {
        tasks.push(tokio::spawn(probe::run(
            auditor.clone(),
            Duration::from_secs(cfg.catalog_audit_secs),
            stopped.clone(),
        )));
    }
    (tasks, catalogue, auditor)
}

/// The admin API's tokens: the configured ones, else the generated `admin_token`.
fn admin_tokens(cfg: &Config, admin_token: &str) -> Tokens {
    Tokens {
        admin: if cfg.admin_tokens.is_empty() {
            vec![admin_token.to_owned()]
        } else {
            cfg.admin_tokens.clone()
        },
        read_only: cfg.read_only_tokens.clone(),
    }
}

/// Step 4, serve the admin API on `listener` (over HTTPS when `tls` is set) until the stop
/// signal turns.
fn serve_admin(
    listener: TcpListener,
    state: AdminState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stopped: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let app = admin::router(state);
    let stopping = until(stopped.clone());
    tokio::spawn(async move {
        if let Err(e) = admin::https::serve(listener, app, tls, stopping).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    })
}

/// Step 5a, for the voter that bootstrapped a one-voter cluster: wait to lead, then apply the
/// declared configuration before the start returns.
async fn settle_now(consensus: &Consensus, declarations: &Declarations) -> Result<(), Error> {
    consensus.wait_for_leader(Duration::from_secs(10)).await?;
    // A restarted voter of a larger cluster may know a leader that is already gone, or
    // none for a moment during an election: retry a few times before giving up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match settle(consensus, declarations).await {
            Ok(()) => return Ok(()),
            Err(e @ (Error::NotLeader { .. } | Error::Raft(_)))
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::info!(error = %e, "cannot apply the declared configuration yet; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Step 5b, for every other voter, in the background: join through `join` when given, wait
/// for a leader, then apply the declared configuration. Retries until it has, or until stopped.
async fn settle_later(
    consensus: Consensus,
    declarations: Arc<Declarations>,
    join: Option<String>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut joined = join.is_none();
    // Until a leader accepts it; a voter waiting to be added may wait long.
    for attempt in 0u32.. {
        let delay = Duration::from_millis(200 * u64::from(attempt.min(25)));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if let (false, Some(seed)) = (joined, &join) {
            match consensus.join_via(seed).await {
                Ok(()) => {
                    tracing::info!(seed = %seed, "joined the cluster as a voter");
                    joined = true;
                }
                Err(e) => {
                    tracing::info!(seed = %seed, error = %e, "cannot join yet; retrying");
                    continue;
                }
            }
        }
        if consensus
            .wait_for_leader(Duration::from_secs(1))
            .await
            .is_err()
        {
            continue;
        }
        match settle(&consensus, &declarations).await {
            Ok(()) => return,
            Err(e @ Error::ConfigFile { .. }) => {
                tracing::error!(error = %e, "the config file cannot be applied");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "retrying the initial config"),
        }
    }
}

/// Opens the configured backend: the embedded raft voter or a follower of etcd's log.
async fn open_consensus(
    cfg: &Config,
    addr: String,
    key: Arc<ClusterKey>,
) -> Result<Consensus, Error> {
    match (cfg.backend, &cfg.etcd) {
        #[cfg(feature = "etcd")]
        (BackendKind::Etcd, Some(etcd)) => {
            Consensus::open_etcd(cfg.node_id, addr, etcd.clone(), Some(key)).await
        }
        (BackendKind::Etcd, _) => Err(Error::Config {
            field: "backend",
            reason: "etcd needs a Switchyard built with the `etcd` cargo feature".into(),
        }),
        (BackendKind::Raft, _) => {
            Consensus::open(
                cfg.node_id,
                addr,
                &cfg.data_dir,
                cfg.raft_settings(),
                Some(key),
            )
            .await
        }
    }
}

/// Announces this voter over mDNS until `stopped`; a LAN without multicast only loses the
/// zero-config convenience, so failures are warnings.
async fn announce(node_id: u64, addr: String, stopped: impl Future<Output = ()>) {
    let Some(port) = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
    else {
        tracing::warn!(addr = %addr, "no port in the advertised address; not announcing over mDNS");
        return;
    };
    // A voter on loopback cannot be reached from the LAN; announcing it would mislead agents.
    if addr
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
    {
        tracing::debug!(addr = %addr, "listening on loopback only; not announcing over mDNS");
        return;
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchyard".into());
    let name = format!("{host}-{node_id}-{port}");
    match switchyard_mdns::advertise_control_plane(&name, port) {
        Ok(advertisement) => {
            tracing::info!(name = %name, port, "announced on the LAN over mDNS");
            stopped.await;
            advertisement.stop().await;
        }
        Err(e) => tracing::warn!(error = %e, "cannot announce over mDNS"),
    }
}

/// Names the cluster (once) and applies the declared configuration.
async fn settle(consensus: &Consensus, declarations: &Declarations) -> Result<(), Error> {
    let id = format!("sy-{}", seal::random_id(12)?);
    consensus.write(Command::SetClusterId { id }).await?;
    declarations.apply(consensus).await?;
    Ok(())
}

/// The generated admin token in `<data_dir>/admin.token`, created on first use.
fn admin_token_file(data_dir: &std::path::Path) -> Result<String, Error> {
    let path = data_dir.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) | Err(_) => {
            let token = format!("sy_admin_{}", seal::random_id(24)?);
            std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
            write_private(&path, &token).map_err(|source| Error::DataDir {
                path: path.display().to_string(),
                source,
            })?;
            tracing::info!(path = %path.display(), "generated an admin token");
            Ok(token)
        }
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A TLS problem as a config error naming the file's field, with its cause.
fn tls_error(e: TlsError) -> Error {
    Error::Config {
        field: e.field(),
        reason: e.reason(),
    }
}

/// Resolves when `stopped` turns true (or its sender is gone).
async fn until(mut stopped: watch::Receiver<bool>) {
    let _stopped = stopped.wait_for(|stop| *stop).await;
}
