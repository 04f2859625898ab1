//! A control-plane cluster of real `switchyard control-plane` processes on loopback.
//!
//! Voter N listens on `127.0.0.(10+N)` and dials its peers from that address, so a
//! [`FaultProxy`] in front of each voter (when asked for) can cut chosen voters apart. Ports are
//! ephemeral on first start and reused on restart (raft membership names them). Processes are
//! killed when the cluster is dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::views::{NewEndpoint, StatusView};
use tokio::net::TcpListener;

use crate::deploy::switchyard_bin;
use crate::fault_proxy::FaultProxy;
use crate::harness::wait_for;

/// Admin token every voter accepts for writes.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// Token every voter accepts for reads only.
pub const READ_TOKEN: &str = "test-read-token-0123456789";
/// The cluster key all voters share (32 bytes of 7, base64url).
pub const CLUSTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

#[derive(Deserialize)]
struct Addrs {
    grpc: SocketAddr,
    admin: SocketAddr,
}

/// One voter process.
pub struct Voter {
    /// Raft id.
    pub id: u64,
    data: PathBuf,
    grpc: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    child: Option<Child>,
    proxy: Option<FaultProxy>,
}

impl Voter {
    /// The loopback address this voter listens on and dials from.
    pub fn ip(&self) -> IpAddr {
        voter_ip(self.id)
    }

    /// Its gRPC address (direct, not through the proxy).
    pub fn grpc(&self) -> Option<SocketAddr> {
        self.grpc
    }

    /// The address peers use: the proxy's when proxied.
    pub fn advertised(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().map(FaultProxy::addr).or(self.grpc)
    }

    /// Its proxy, when the cluster was started with proxies.
    pub fn proxy(&self) -> Option<&FaultProxy> {
        self.proxy.as_ref()
    }

    /// Whether its process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// An admin client with the admin token.
    pub fn admin(&self) -> anyhow::Result<AdminClient> {
        self.admin_with(ADMIN_TOKEN)
    }

    /// An admin client presenting `token`.
    pub fn admin_with(&self, token: &str) -> anyhow::Result<AdminClient> {
        let addr = self.admin.context("the voter never started")?;
        Ok(AdminClient::new(&format!("http://{addr}"), token)?)
    }

    /// Its admin API base URL.
    pub fn admin_url(&self) -> anyhow::Result<String> {
        Ok(format!("http://{}", self.admin.context("never started")?))
    }
}

/// The address voter `id` listens on and dials from.
pub fn voter_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + u8::try_from(id).unwrap_or(0)))
}

/// How voters start.
pub enum Start {
    /// Initialise a new cluster.
    Bootstrap,
    /// Join through voter `id`.
    Join(u64),
    /// Wait to be added.
    Wait,
}

/// A set of voter processes.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    proxied: bool,
    /// Extra arguments every voter starts with.
    args: Vec<String>,
    /// The voters, by position (voter `id` is at `id - 1`).
    pub voters: Vec<Voter>,
}

impl Cluster {
    /// Starts `n` voters: the first bootstraps, the others join it; waits until all vote.
    pub async fn start(n: u64, proxied: bool) -> anyhow::Result<Self> {
        Self::start_with_args(n, proxied, &[]).await
    }

    /// As [`Cluster::start`], every voter started with `args` too (e.g. `--config <file>`).
    pub async fn start_with_args(n: u64, proxied: bool, args: &[&str]) -> anyhow::Result<Self> {
        crate::harness::init();
        let mut cluster = Self {
            // SWITCHYARD_KEEP_TEST_DIRS=1 keeps the voters' data and logs to read after a failure.
            dir: tempfile::Builder::new()
                .prefix("switchyard-cluster-")
                .disable_cleanup(std::env::var_os("SWITCHYARD_KEEP_TEST_DIRS").is_some())
                .tempdir()?,
            bin: switchyard_bin()?,
            proxied,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            voters: Vec::new(),
        };
        cluster.add_voter(Start::Bootstrap).await?;
        for _ in 1..n {
            cluster.add_voter(Start::Join(1)).await?;
        }
        cluster
            .wait_voters(n as usize, Duration::from_secs(20))
            .await?;
        Ok(cluster)
    }

    /// Starts one more voter process (id = count + 1).
    pub async fn add_voter(&mut self, start: Start) -> anyhow::Result<u64> {
        let id = self.voters.len() as u64 + 1;
        let proxy = if self.proxied {
            // Pointed at a placeholder until the voter has bound its port.
            Some(FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 9))).await?)
        } else {
            None
        };
        self.voters.push(Voter {
            id,
            data: self.dir.path().join(format!("voter-{id}")),
            grpc: None,
            admin: None,
            child: None,
            proxy,
        });
        self.launch(id, start).await?;
        Ok(id)
    }

    /// Voter `id`.
    pub fn voter(&self, id: u64) -> &Voter {
        &self.voters[(id - 1) as usize]
    }

    async fn launch(&mut self, id: u64, start: Start) -> anyhow::Result<()> {
        let seed = match start {
            Start::Join(seed) => Some(
                self.voter(seed)
                    .advertised()
                    .context("the seed voter has no address")?,
            ),
            _ => None,
        };
        let bin = self.bin.clone();
        let extra = self.args.clone();
        let voter = &mut self.voters[(id - 1) as usize];
        let ip = voter.ip();
        let addr_file = voter.data.join("addrs.json");
        let _stale = std::fs::remove_file(&addr_file);
        std::fs::create_dir_all(&voter.data)?;
        let grpc_port = voter.grpc.map_or(0, |a| a.port());
        let admin_port = voter.admin.map_or(0, |a| a.port());
        let mut cmd = Command::new(&bin);
        cmd.arg("control-plane")
            .args(["--listen", &format!("{ip}:{grpc_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(&voter.data)
            .args(["--peer-bind-ip", &ip.to_string()])
            .arg("--addr-file")
            .arg(&addr_file)
            .args(["--admin-tokens", ADMIN_TOKEN])
            .args(["--read-only-tokens", READ_TOKEN])
            .args(["--cluster-key", CLUSTER_KEY])
            .args(["--heartbeat-ms", "100"])
            .args(["--election-min-ms", "400"])
            .args(["--election-max-ms", "800"])
            .args(["--snapshot-every", "50"])
            .args(["--keep-logs", "20"])
            .args(&extra)
            .env("RUST_LOG", "warn,switchyard_control_plane=info")
            .env_remove("SWITCHYARD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Appended: a restarted voter's log follows the one before it.
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(voter.data.join("voter.log"))?,
            );
        if let Some(proxy) = &voter.proxy {
            cmd.args(["--advertise", &proxy.addr().to_string()]);
        }
        match (start, seed) {
            (Start::Bootstrap, _) => {
                cmd.arg("--bootstrap");
            }
            (Start::Join(_), Some(seed)) => {
                cmd.args(["--join", &format!("http://{seed}")]);
            }
            _ => {
                cmd.arg("--no-bootstrap");
            }
        }
        voter.child = Some(cmd.spawn().context("starting a voter")?);
        let addrs: Addrs = wait_for(Duration::from_secs(20), "the voter's address file", || {
            let path = addr_file.clone();
            async move {
                let text = std::fs::read_to_string(path).ok()?;
                serde_json::from_str(&text).ok()
            }
        })
        .await?;
        voter.grpc = Some(addrs.grpc);
        voter.admin = Some(addrs.admin);
        if let Some(proxy) = &voter.proxy {
            proxy.retarget(addrs.grpc);
        }
        Ok(())
    }

    /// Kills voter `id` with SIGKILL.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.voters[(id - 1) as usize].child.take() {
            let _gone = child.kill();
            let _reaped = child.wait();
        }
    }

    /// The process id of voter `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.voters[(id - 1) as usize].child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to voter `id`'s process; false when it does not run.
    pub fn signal(&self, id: u64, signal: &str) -> anyhow::Result<bool> {
        let Some(pid) = self.pid(id) else {
            return Ok(false);
        };
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()?;
        Ok(status.success())
    }

    /// Stops voter `id` with SIGTERM and waits for it to exit.
    pub async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        if let Some(mut child) = self.voters[(id - 1) as usize].child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            let exited = wait_for(Duration::from_secs(15), "the voter to exit", || {
                let status = child.try_wait().ok().flatten();
                async move { status }
            })
            .await;
            if exited.is_err() {
                let _gone = child.kill();
                let _reaped = child.wait();
                bail!("voter {id} did not stop on SIGTERM");
            }
        }
        Ok(())
    }

    /// Starts a stopped voter again on its ports and data directory.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.launch(id, Start::Wait).await
    }

    /// The status every running voter reports (voters that do not answer are left out).
    pub async fn statuses(&self) -> Vec<(u64, StatusView)> {
        let mut out = Vec::new();
        for v in self.voters.iter().filter(|v| v.running()) {
            if let Ok(client) = v.admin()
                && let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_secs(2), client.status()).await
            {
                out.push((v.id, s));
            }
        }
        out
    }

    /// Waits until a running voter says it leads, and returns its id.
    pub async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        wait_for(timeout, "a leader", || async {
            self.statuses()
                .await
                .into_iter()
                .find(|(_, s)| s.role == "leader")
                .map(|(id, _)| id)
        })
        .await
    }

    /// Waits until the leader counts `n` voters.
    pub async fn wait_voters(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        wait_for(timeout, &format!("{n} voters"), || async {
            self.statuses()
                .await
                .into_iter()
                .find(|(_, s)| s.role == "leader")
                .filter(|(_, s)| s.members.iter().filter(|m| m.voter).count() == n)
                .map(|_| ())
        })
        .await
    }

    /// Waits until every running voter reports the same state digest and returns it.
    pub async fn wait_converged(&self, timeout: Duration) -> anyhow::Result<String> {
        let running = self.voters.iter().filter(|v| v.running()).count();
        wait_for(timeout, "every voter to apply the same state", || async {
            let statuses = self.statuses().await;
            let first = statuses.first()?.1.digest.clone();
            (statuses.len() == running && statuses.iter().all(|(_, s)| s.digest == first))
                .then_some(first)
        })
        .await
    }

    /// Writes an API endpoint `id` through voter `via`; true once acknowledged within `timeout`.
    pub async fn put_endpoint(&self, via: u64, id: &str, timeout: Duration) -> bool {
        let voter = self.voter(via);
        if !voter.running() {
            return false;
        }
        let Ok(client) = voter.admin() else {
            return false;
        };
        put_endpoint_via(&client, id, timeout).await
    }

    /// A fresh ephemeral loopback listener (for edges and fakes).
    pub async fn listener() -> anyhow::Result<TcpListener> {
        Ok(TcpListener::bind("127.0.0.1:0").await?)
    }
}

/// Writes an API endpoint `id` with `client`; true once acknowledged within `timeout`.
pub async fn put_endpoint_via(client: &AdminClient, id: &str, timeout: Duration) -> bool {
    {
        let body = NewEndpoint {
            id: id.into(),
            url: "http://10.0.0.1:8000/v1".into(),
            models: vec!["m".into()],
            ..Default::default()
        };
        matches!(
            tokio::time::timeout(timeout, client.add_endpoint(&body)).await,
            Ok(Ok(_))
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for v in &mut self.voters {
            if let Some(mut child) = v.child.take() {
                let _gone = child.kill();
                let _reaped = child.wait();
            }
        }
    }
}
