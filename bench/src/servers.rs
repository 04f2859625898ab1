//! The processes a load run measures, each run as a child of the bench binary so its RSS and
//! CPU are its own: a fast fake upstream, the bare pass-through floor proxy, and the edge.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard_proto::v1;
use tokio::net::TcpListener;

/// The model name every target serves.
pub const MODEL: &str = "bench-model";
/// The client key the edge requires in a bench run (direct and floor ignore it).
pub const KEY: &str = "sy_live_benchbenchbenchbenchbench";

/// What the fake upstream answers to a non-streaming chat: a realistic small completion.
pub const CHAT_BODY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}"#;

/// Binds loopback, prints `listening <addr>` (the parent reads it) and returns the listener.
async fn bind() -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    #[expect(clippy::print_stdout, reason = "the parent process reads the address")]
    {
        println!("listening {addr}");
    }
    Ok((listener, addr))
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// SSE frames of a streamed answer (with the usage chunk when asked).
fn sse(include_usage: bool) -> Vec<Bytes> {
    let chunk = |delta: &str, finish: &str| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        ))
    };
    let mut out = vec![
        chunk(r#"{"role":"assistant","content":""}"#, "null"),
        chunk(r#"{"content":"Hello"}"#, "null"),
        chunk(r#"{"content":" there"}"#, "null"),
        chunk("{}", "\"stop\""),
    ];
    if include_usage {
        out.push(Bytes::from_static(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n"));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

async fn upstream_answer(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let find = |needle: &[u8]| memchr::memmem::find(&body, needle).is_some();
    let response = if find(b"\"stream\":true") {
        let frames = sse(find(b"\"include_usage\":true"));
        let stream = futures::stream::iter(
            frames
                .into_iter()
                .map(|b| Ok::<_, hyper::Error>(Frame::data(b))),
        );
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(BodyExt::boxed(StreamBody::new(stream)))
    } else {
        Response::builder()
            .header("content-type", "application/json")
            .body(full(CHAT_BODY))
    };
    Ok(response.unwrap_or_else(|_| Response::new(full(""))))
}

/// Serves connections from `listener` with `handler`, one task per connection.
async fn serve<F, Fut>(listener: TcpListener, handler: F) -> anyhow::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(handler);
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "bench connection ended");
            }
        });
    }
}

/// The fast fake upstream: a fixed completion, or an SSE stream when `"stream":true`.
pub async fn upstream() -> anyhow::Result<()> {
    let (listener, _) = bind().await?;
    serve(listener, upstream_answer).await
}

/// Most chunks of a slow stream: it ends by itself even if nobody closes it.
const TRICKLE_CHUNKS: u32 = 600;

/// A slow upstream: every chat is an SSE stream whose first chunk comes at once and the next
/// ones every `every`, as a long generation trickles tokens, up to [`TRICKLE_CHUNKS`].
pub async fn slow_upstream(every: std::time::Duration) -> anyhow::Result<()> {
    let (listener, _) = bind().await?;
    serve(listener, move |req: Request<Incoming>| async move {
        // The request body is read whole first, as a real server does.
        let _body = req.into_body().collect().await;
        let chunk = Bytes::from_static(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok\"},\"finish_reason\":null}]}\n\n");
        let stream = futures::stream::unfold(0u32, move |sent| {
            let chunk = chunk.clone();
            async move {
                match sent {
                    0 => {}
                    n if n > TRICKLE_CHUNKS => return None,
                    _ => tokio::time::sleep(every).await,
                }
                let frame = if sent == TRICKLE_CHUNKS {
                    Bytes::from_static(b"data: [DONE]\n\n")
                } else {
                    chunk
                };
                Some((Ok::<_, hyper::Error>(Frame::data(frame)), sent + 1))
            }
        });
        let response = Response::builder()
            .header("content-type", "text/event-stream")
            .body(BodyExt::boxed(StreamBody::new(stream)));
        Ok(response.unwrap_or_else(|_| Response::new(full(""))))
    })
    .await
}

/// The floor: a bare pass-through proxy (hyper server + pooled hyper client, no parsing, no
/// routing) to `upstream`. Whatever it adds is the physical cost of one extra HTTP hop.
pub async fn floor(upstream: SocketAddr) -> anyhow::Result<()> {
    let (listener, _) = bind().await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    serve(listener, move |req: Request<Incoming>| {
        let client = client.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            parts.uri = match format!("http://{upstream}{path}").parse() {
                Ok(uri) => uri,
                Err(_) => return Ok(Response::new(full("bad uri"))),
            };
            parts.headers.remove(hyper::header::HOST);
            match client.request(Request::from_parts(parts, body)).await {
                Ok(resp) => Ok(resp.map(BodyExt::boxed)),
                Err(_) => Ok(Response::builder()
                    .status(502)
                    .body(full("upstream failed"))
                    .unwrap_or_else(|_| Response::new(full("")))),
            }
        }
    })
    .await
}

/// Whether the bench edge counts usage, and where it reports it.
#[derive(Debug, Clone, Default)]
pub struct Accounting {
    /// Count usage.
    pub on: bool,
    /// Control plane to report to (gRPC URL); none: reports fail and are kept, as on an edge
    /// whose control plane is away.
    pub to: Option<String>,
    /// Also write the request log here (telemetry on).
    pub request_log: Option<std::path::PathBuf>,
}

/// Requests and tokens per minute of the bench key when limits are on: far above any load, so
/// nothing is refused and only the cost of admission is measured.
pub const HUGE: u64 = 1_000_000_000_000;

/// The edge, with a table routing [`MODEL`] to `upstream` and one client key ([`KEY`]). With
/// `limits` (a control plane's gRPC URL), the key has cluster-wide `rpm` and `tpm` limits leased
/// from that control plane.
pub async fn edge(
    upstream: SocketAddr,
    limits: Option<String>,
    usage: Accounting,
    max_connections: Option<usize>,
) -> anyhow::Result<()> {
    let (listener, _) = bind().await?;
    let mut cfg = switchyard_edge::Config::default();
    if let Some(max) = max_connections {
        cfg.max_connections = max;
    }
    if let Some(control_plane) = limits.as_ref().or(usage.to.as_ref()) {
        cfg.control_plane.clone_from(control_plane);
        cfg.edge_name = "bench-edge".into();
    }
    cfg.usage_accounting = usage.on;
    // Reports every second, so the bench sees the flush's cost too.
    cfg.usage_flush_ms = 1_000;
    cfg.request_log = usage.request_log;
    let state = switchyard_edge::EdgeState::new(cfg).context("edge state")?;
    let table = v1::RoutingTable {
        version: 1,
        cluster_id: "bench".into(),
        endpoints: vec![v1::RouteEndpoint {
            id: "bench-upstream".into(),
            kind: "openai".into(),
            base_url: format!("http://{upstream}/v1"),
            source: "config".into(),
            healthy: true,
            ..Default::default()
        }],
        models: vec![v1::ModelRoute {
            name: MODEL.into(),
            deployments: vec![v1::Deployment {
                endpoint_id: "bench-upstream".into(),
                upstream_model: MODEL.into(),
                weight: 1,
                ..Default::default()
            }],
            created: 1_700_000_000,
            owned_by: "bench".into(),
        }],
        keys: vec![v1::ClientKey {
            id: "bench".into(),
            sha256: switchyard_edge::auth::hash(KEY).to_vec(),
            name: "bench".into(),
            limits: limits.is_some().then_some(v1::Limits {
                rpm: HUGE,
                tpm: HUGE,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    anyhow::ensure!(state.install_table(&table), "bench table not installed");
    // The server loop `switchyard edge` runs, with its timeouts and connection cap.
    let options = switchyard_edge::ServeOptions::from(state.config());
    let app = switchyard_edge::app(state);
    switchyard_edge::serve(listener, app, options, std::future::pending()).await?;
    Ok(())
}
