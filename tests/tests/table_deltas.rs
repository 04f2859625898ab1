//! The routing-table watch on a real voter, through gRPC: after the full table a watcher gets
//! only deltas, which rebuild exactly the table a fresh watcher gets in full; a watcher a few
//! versions behind catches up with deltas; one whose version the voter no longer holds deltas
//! for gets the full table.

use std::time::Duration;

use prost::Message;
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use switchyard_control_plane::{Config, ControlPlane};
use switchyard_proto::delta;
use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use switchyard_proto::v1::{RoutingTable, WatchRoutingTableRequest};
use switchyard_tests::cluster::{ADMIN_TOKEN, CLUSTER_KEY};
use tokio::net::TcpListener;
use tonic::Streaming;

/// Deltas the voter keeps: few, so the test can outrun them.
const KEPT: usize = 8;

async fn start(dir: &std::path::Path) -> anyhow::Result<ControlPlane> {
    switchyard_tests::harness::init();
    let cfg = Config {
        data_dir: dir.join("data"),
        table_deltas_kept: KEPT,
        admin_tokens: vec![ADMIN_TOKEN.into()],
        cluster_key: Some(CLUSTER_KEY.into()),
        ..Default::default()
    };
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let admin = TcpListener::bind("127.0.0.1:0").await?;
    Ok(ControlPlane::start_with_admin(cfg, grpc, Some(admin)).await?)
}

async fn watch(
    cp: &ControlPlane,
    since: u64,
    deltas: bool,
) -> anyhow::Result<Streaming<RoutingTable>> {
    let mut client = EdgeServiceClient::connect(format!("http://{}", cp.addr())).await?;
    let request = WatchRoutingTableRequest {
        since_version: since,
        edge_name: "t".into(),
        deltas,
        cluster_id: String::new(),
    };
    Ok(client.watch_routing_table(request).await?.into_inner())
}

async fn next(stream: &mut Streaming<RoutingTable>) -> anyhow::Result<RoutingTable> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await??
        .ok_or_else(|| anyhow::anyhow!("the stream ended"))
}

/// Applies the deltas `stream` sends to `held` until it reaches `version`; returns the largest
/// delta's encoded size.
async fn follow_to(
    stream: &mut Streaming<RoutingTable>,
    held: &mut RoutingTable,
    version: u64,
) -> anyhow::Result<usize> {
    let mut largest = 0;
    while held.version < version {
        let message = next(stream).await?;
        anyhow::ensure!(message.delta.is_some(), "a full table after the first");
        anyhow::ensure!(message.endpoints.is_empty() && message.models.is_empty());
        largest = largest.max(message.encoded_len());
        *held = delta::apply(held, &message)?;
    }
    Ok(largest)
}

fn endpoint(i: usize) -> NewEndpoint {
    NewEndpoint {
        id: format!("e{i}"),
        url: format!("http://10.0.0.{i}:8000/v1"),
        models: vec![format!("m{i}")],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_get_deltas_that_rebuild_the_table_and_a_gap_gets_it_in_full() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let cp = start(dir.path()).await?;
    let addr = cp
        .admin_addr()
        .ok_or_else(|| anyhow::anyhow!("no admin address"))?;
    let admin = AdminClient::new(&format!("http://{addr}"), ADMIN_TOKEN)?;
    for i in 0..20 {
        admin.add_endpoint(&endpoint(i)).await?;
    }

    let mut a = watch(&cp, 0, true).await?;
    let first = next(&mut a).await?;
    assert!(first.delta.is_none(), "the first message is the full table");
    assert_eq!(first.endpoints.len(), 20);

    // Changes of every kind: an endpoint added and removed, a key created.
    admin.add_endpoint(&endpoint(20)).await?;
    admin.remove_endpoint("e3").await?;
    admin
        .create_key(&NewKey {
            name: "ci".into(),
            ..Default::default()
        })
        .await?;
    let full = next(&mut watch(&cp, 0, false).await?).await?;
    let mut held = first.clone();
    let largest = follow_to(&mut a, &mut held, full.version).await?;
    assert_eq!(held, delta::canonical(&full));
    assert!(
        largest < full.encoded_len() / 4,
        "a delta of {largest} bytes against a table of {}",
        full.encoded_len()
    );

    // A watcher that holds the first table catches up with the deltas since.
    let mut b = watch(&cp, first.version, true).await?;
    let mut caught_up = first.clone();
    follow_to(&mut b, &mut caught_up, full.version).await?;
    assert_eq!(caught_up, held);
    // A current watcher hears at once that its stream works: an empty delta.
    let mut current = watch(&cp, full.version, true).await?;
    let hello = next(&mut current).await?;
    assert_eq!(
        hello.delta.as_ref().map(|d| d.base_version),
        Some(full.version)
    );

    // A version the voter holds no deltas for (long gone, or never held): the full table.
    let mut versions = 0;
    while versions <= KEPT {
        let before = next(&mut watch(&cp, 0, false).await?).await?.version;
        admin.add_endpoint(&endpoint(100 + versions)).await?;
        let after = next(&mut watch(&cp, 0, false).await?).await?.version;
        versions += usize::try_from(after - before)?;
    }
    let latest = next(&mut watch(&cp, 0, false).await?).await?;
    for since in [first.version, latest.version + 1_000] {
        let resync = next(&mut watch(&cp, since, true).await?).await?;
        assert!(resync.delta.is_none(), "since {since}");
        assert_eq!(resync, latest, "since {since}");
    }
    cp.stop().await?;
    Ok(())
}
