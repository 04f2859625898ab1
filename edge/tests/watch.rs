//! Following the control plane: an in-test tonic `EdgeService` streams tables to a running edge,
//! goes away, comes back; the cached table lets a fresh edge serve with no control plane.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use serde_json::Value;
use support::{FakeUpstream, TableBuilder, serve_app, table_version, wait_for};
use switchyard_edge::{Config, EdgeState, cache};
use switchyard_proto::v1;
use switchyard_proto::v1::edge_service_server::{EdgeService, EdgeServiceServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

const DEADLINE: Duration = Duration::from_secs(10);

/// A control plane that streams fixed tables to every watcher, then holds the stream open
/// until stopped.
struct FakeControlPlane {
    tables: Vec<v1::RoutingTable>,
    requests: Arc<Mutex<Vec<v1::WatchRoutingTableRequest>>>,
    stop: watch::Receiver<bool>,
}

type TableStream = Pin<Box<dyn Stream<Item = Result<v1::RoutingTable, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl EdgeService for FakeControlPlane {
    type WatchRoutingTableStream = TableStream;

    async fn report_upstream_events(
        &self,
        _request: tonic::Request<v1::UpstreamEvents>,
    ) -> Result<tonic::Response<v1::UpstreamEventsAck>, tonic::Status> {
        Err(tonic::Status::unimplemented("not part of this test"))
    }

    async fn report_usage(
        &self,
        _request: tonic::Request<v1::UsageReport>,
    ) -> Result<tonic::Response<v1::UsageAck>, tonic::Status> {
        Err(tonic::Status::unimplemented("not part of this test"))
    }

    async fn watch_routing_table(
        &self,
        request: tonic::Request<v1::WatchRoutingTableRequest>,
    ) -> Result<tonic::Response<TableStream>, tonic::Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        let mut stop = self.stop.clone();
        let held_open = futures::stream::once(async move {
            // Ends the stream when the server stops, so graceful shutdown can finish.
            let _stopped = stop.wait_for(|s| *s).await;
        })
        .filter_map(|()| async { None });
        let tables = futures::stream::iter(self.tables.clone().into_iter().map(Ok));
        Ok(tonic::Response::new(Box::pin(tables.chain(held_open))))
    }
}

/// A running fake control plane.
struct ControlPlane {
    requests: Arc<Mutex<Vec<v1::WatchRoutingTableRequest>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ControlPlane {
    async fn start(listener: TcpListener, tables: Vec<v1::RoutingTable>) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let requests = Arc::default();
        let service = FakeControlPlane {
            tables,
            requests: Arc::clone(&requests),
            stop: stop_rx.clone(),
        };
        let mut shutdown = stop_rx;
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(EdgeServiceServer::new(service))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _stopped = shutdown.wait_for(|s| *s).await;
                })
                .await
                .unwrap();
        });
        Self {
            requests,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.unwrap();
    }

    fn requests(&self) -> Vec<v1::WatchRoutingTableRequest> {
        self.requests.lock().unwrap().clone()
    }
}

fn table(version: u64, upstream: &FakeUpstream, model: &str) -> v1::RoutingTable {
    TableBuilder::version(version)
        .endpoint("fake", &upstream.base_url(), true)
        .model(model, &[("fake", "upstream-model")])
        .build()
}

async fn model_ids(edge: &str) -> Vec<String> {
    let body: Value = support::get(format!("{edge}/v1/models"))
        .await
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn chat_status(edge: &str, model: &str) -> u16 {
    support::http()
        .post(format!("{edge}/v1/chat/completions"))
        .json(&serde_json::json!({"model": model, "messages": []}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn cached_version(path: &Path) -> Option<u64> {
    cache::load(path).ok().flatten().map(|t| t.version)
}

#[tokio::test]
async fn edge_follows_the_control_plane_and_survives_its_absence() {
    let upstream = FakeUpstream::start().await;
    let cache_dir = tempfile::tempdir().unwrap();
    let cache_path = cache_dir.path().join("table.pb");

    let cp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp_addr: SocketAddr = cp_listener.local_addr().unwrap();
    let control_plane = ControlPlane::start(
        cp_listener,
        vec![
            table(1, &upstream, "old-model"),
            table(2, &upstream, "new-model"),
        ],
    )
    .await;

    let cfg = Config {
        control_plane: format!("http://{cp_addr}"),
        edge_name: "edge-under-test".into(),
        table_cache: Some(cache_path.clone()),
        ..Config::default()
    };
    let edge_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = format!("http://{}", edge_listener.local_addr().unwrap());
    let (stop_edge, mut edge_stopped) = watch::channel(false);
    let edge_task = tokio::spawn(switchyard_edge::run(
        cfg.clone(),
        edge_listener,
        async move {
            let _stopped = edge_stopped.wait_for(|s| *s).await;
        },
    ));

    // The edge picks up version 2 and serves it.
    wait_for("edge to hold table 2", DEADLINE, || async {
        (table_version(&edge).await == Some(2)).then_some(())
    })
    .await;
    assert_eq!(model_ids(&edge).await, vec!["new-model"]);
    let first = &control_plane.requests()[0];
    assert_eq!(
        (first.since_version, first.edge_name.as_str()),
        (0, "edge-under-test")
    );

    // The control plane goes away; the edge keeps serving the last table.
    control_plane.stop().await;
    assert_eq!(table_version(&edge).await, Some(2));
    assert_eq!(chat_status(&edge, "new-model").await, 200);

    // A control plane comes back on the same address; the edge reconnects, asking from version 2.
    let cp_listener = TcpListener::bind(cp_addr).await.unwrap();
    let control_plane =
        ControlPlane::start(cp_listener, vec![table(3, &upstream, "newest-model")]).await;
    wait_for("edge to hold table 3", DEADLINE, || async {
        (table_version(&edge).await == Some(3)).then_some(())
    })
    .await;
    assert_eq!(control_plane.requests()[0].since_version, 2);
    assert_eq!(model_ids(&edge).await, vec!["newest-model"]);

    // Every installed table is persisted; a fresh edge serves from the cache alone.
    wait_for("table 3 in the cache", DEADLINE, || async {
        (cached_version(&cache_path).await == Some(3)).then_some(())
    })
    .await;
    control_plane.stop().await;
    stop_edge.send_replace(true);
    edge_task.await.unwrap().unwrap();

    let restarted = EdgeState::new(Config {
        control_plane: "http://127.0.0.1:1".into(),
        ..cfg
    })
    .unwrap();
    assert_eq!(restarted.table().map(|t| t.version), Some(3));
    let edge = serve_app(restarted).await;
    assert_eq!(table_version(&edge).await, Some(3));
    assert_eq!(chat_status(&edge, "newest-model").await, 200);
}
