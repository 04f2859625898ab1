//! The start-up the edge-facing cluster scenarios share: a cluster with endpoints registered
//! through its leader and one client key, and in-process edges that follow one voter each and
//! are waited on until they list a model.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use tokio::net::TcpListener;

use crate::cluster::Cluster;
use crate::harness::wait_for;

/// A running cluster, its leader's admin client, and the secret of the key it was started with.
pub struct KeyedCluster {
    /// The voters.
    pub cluster: Cluster,
    /// The voter that led when the endpoints and the key were written.
    pub leader: u64,
    /// The leader's admin API.
    pub admin: AdminClient,
    /// The client key's secret.
    pub secret: String,
}

impl KeyedCluster {
    /// Starts `voters` voters, waits for a leader (10 s), registers `endpoints` and creates `key`.
    pub async fn start(
        voters: u64,
        endpoints: &[NewEndpoint],
        key: NewKey,
    ) -> anyhow::Result<Self> {
        crate::harness::init();
        let cluster = Cluster::start(voters, false).await?;
        let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
        let admin = cluster.voter(leader).admin()?;
        for endpoint in endpoints {
            admin.add_endpoint(endpoint).await?;
        }
        let secret = admin.create_key(&key).await?.secret;
        Ok(Self {
            cluster,
            leader,
            admin,
            secret,
        })
    }

    /// Starts an in-process edge called `name` following voter `id`, and waits up to
    /// `timeout` until it lists `model` for this cluster's key.
    pub async fn edge(
        &self,
        id: u64,
        name: &str,
        model: &str,
        timeout: Duration,
    ) -> anyhow::Result<SocketAddr> {
        let grpc = self
            .cluster
            .voter(id)
            .grpc()
            .ok_or_else(|| anyhow::anyhow!("voter {id} is not running"))?;
        follow_voter(grpc, name, &self.secret, model, timeout).await
    }
}

/// Starts an in-process edge called `name` following the voter at `grpc`, and waits up to
/// `timeout` until its `/v1/models` lists `model` for `secret`. Returns where it serves.
pub async fn follow_voter(
    grpc: SocketAddr,
    name: &str,
    secret: &str,
    model: &str,
    timeout: Duration,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cfg = switchyard_edge::Config {
        control_plane: format!("http://{grpc}"),
        edge_name: name.into(),
        ..Default::default()
    };
    tokio::spawn(switchyard_edge::run(cfg, listener, std::future::pending()));
    serves(&format!("http://{addr}"), secret, model, timeout).await?;
    Ok(addr)
}

/// Waits up to `timeout` until the edge at `base_url` (`http://HOST:PORT`) lists `model` in
/// `/v1/models` for `secret`.
pub async fn serves(
    base_url: &str,
    secret: &str,
    model: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let want = format!("\"id\":\"{model}\"");
    // /v1/models needs a key once the cluster has keys.
    wait_for(timeout, "the edge to serve the model", || async {
        let response = client
            .get(format!("{base_url}/v1/models"))
            .bearer_auth(secret)
            .send()
            .await
            .ok()?;
        response.text().await.ok()?.contains(&want).then_some(())
    })
    .await
}
