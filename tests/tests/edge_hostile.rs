//! The edge under hostile clients, through its public HTTP interface: a real `switchyard edge`
//! process (so its memory and file descriptors are its own) in front of a fake upstream that
//! records what it produced and when its requests were dropped. Slowloris headers and bodies,
//! slow and vanishing readers, 10,000 idle keep-alive connections with 1,000 streams, and bodies
//! that are huge, deeply nested, not UTF-8, not JSON or empty. After each the edge still answers.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use serde_json::{Value, json};
use switchyard_tests::edge_harness::{FakeControlPlane, Table};
use switchyard_tests::harness::wait_for;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// No single client call may take longer than this.
const CALL: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The fake upstream

/// What the fake upstream saw: bytes produced for streams, streams open and dropped.
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    produced: Arc<AtomicU64>,
    open: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    gate: watch::Sender<bool>,
}

/// Counts a stream or request as open until dropped (finished, or cancelled by the edge).
struct Open {
    open: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Open {
    fn new(up: &Upstream) -> Self {
        up.open.fetch_add(1, Ordering::SeqCst);
        Self {
            open: up.open.clone(),
            dropped: up.dropped.clone(),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn event(content: &str) -> String {
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

fn sse(stream: impl futures::Stream<Item = Bytes> + Send + 'static) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream.map(Ok::<_, std::io::Error>)))
        .unwrap()
}

async fn chat(State(up): State<Upstream>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let stream = request["stream"].as_bool().unwrap_or(false);
    match model.as_str() {
        // As fast as the edge takes it, about 1 KiB an event, bounded.
        "endless" => {
            let open = Open::new(&up);
            let filler = "x".repeat(1_000);
            sse(async_stream::stream! {
                let _open = open;
                for _ in 0..1_000_000 {
                    let e = Bytes::from(event(&filler));
                    up.produced.fetch_add(e.len() as u64, Ordering::SeqCst);
                    yield e;
                }
            })
        }
        // One event, then the rest once the gate opens.
        "gated" => {
            let open = Open::new(&up);
            let mut gate = up.gate.subscribe();
            sse(async_stream::stream! {
                let _open = open;
                yield Bytes::from(event("first"));
                let _opened = tokio::time::timeout(CALL, async { gate.wait_for(|g| *g).await.is_ok() }).await;
                yield Bytes::from(event("second"));
                yield Bytes::from_static(b"data: [DONE]\n\n");
            })
        }
        // Three events 1.5 s apart: longer silences than the tests' idle timeouts.
        "slow-stream" => sse(async_stream::stream! {
            for i in 0..3 {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(1_500)).await;
                }
                yield Bytes::from(event(&format!("part {i}")));
            }
            yield Bytes::from_static(b"data: [DONE]\n\n");
        }),
        // No head for a long time: only a cancellation ends it early.
        "slow-head" => {
            let _open = Open::new(&up);
            tokio::time::sleep(CALL).await;
            "too late".into_response()
        }
        _ if stream => sse(futures::stream::iter([
            Bytes::from(event("Hello")),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ])),
        _ => axum::Json(json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }))
        .into_response(),
    }
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (gate, _) = watch::channel(false);
        let up = Self {
            addr: listener.local_addr().unwrap(),
            produced: Arc::default(),
            open: Arc::default(),
            dropped: Arc::default(),
            gate,
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(up.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        up
    }

    fn table(&self) -> switchyard_proto::v1::RoutingTable {
        let mut table = Table::new(1).endpoint("up", &format!("http://{}/v1", self.addr));
        for model in ["ok", "endless", "gated", "slow-head", "slow-stream"] {
            table = table.model(model, &[("up", model)]);
        }
        table.build()
    }
}

// ---------------------------------------------------------------------------------------------
// The edge process

/// A `switchyard edge` child process, killed on drop.
struct EdgeProcess {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _control_plane: FakeControlPlane,
}

impl EdgeProcess {
    /// Starts an edge following a fake control plane that serves `up`'s table, with `flags`.
    async fn start(up: &Upstream, flags: &[&str]) -> Self {
        let table = up.table();
        switchyard_tests::harness::init();
        let control_plane = FakeControlPlane::start(table, true).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let addr_file = dir.path().join("addr.json");
        let log = dir.path().join("edge.log");
        let bin = switchyard_tests::deploy::switchyard_bin().unwrap();
        let child = Command::new(bin)
            .args([
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--control-plane",
                &control_plane.url,
            ])
            .arg("--addr-file")
            .arg(&addr_file)
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let text = wait_for(
            Duration::from_secs(60),
            "the edge's address file",
            || async { std::fs::read_to_string(&addr_file).ok() },
        )
        .await
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let addr: SocketAddr = v["http"].as_str().unwrap().parse().unwrap();
        let edge = Self {
            child,
            addr,
            log,
            _dir: dir,
            _control_plane: control_plane,
        };
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/health/readiness");
        wait_for(
            Duration::from_secs(20),
            "the edge to hold a table",
            || async {
                let r = client.get(&url).send().await.ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await
        .unwrap();
        edge
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A chat-completions POST of `body`.
    fn post(&self, body: String) -> reqwest::RequestBuilder {
        client()
            .post(self.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS") as f64 / 1024.0
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Fails when the process has exited (crashed).
    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the edge exited with {status}; log:\n{}", self.log_tail());
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// An ordinary chat request must still succeed.
    async fn assert_healthy(&mut self, after: &str) {
        self.assert_alive();
        let resp = self
            .post(chat_body("ok", false))
            .send()
            .await
            .unwrap_or_else(|e| panic!("after {after}: a normal request failed: {e}"));
        assert_eq!(resp.status(), 200, "after {after}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"], "Hello",
            "after {after}"
        );
    }

    /// `switchyard_edge_<name>` from `/metrics` (summed over labels matching `labels`).
    async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let full = format!("switchyard_edge_{name}");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split([' ', '{']).next() == Some(full.as_str()) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("edge log tail:\n{}", self.log_tail());
        }
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(CALL).build().unwrap()
}

fn chat_body(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

/// A raw HTTP/1.1 POST with `Connection: keep-alive` for `/v1/chat/completions`.
fn raw_post(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one response with a content-length from `conn`: (status, body).
async fn read_response(conn: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(CALL, conn.read(&mut chunk))
            .await
            .expect("response head in time")
            .unwrap();
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let n = tokio::time::timeout(CALL, conn.read(&mut chunk))
            .await
            .expect("response body in time")
            .unwrap();
        assert!(n > 0, "connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, buf[head_end..head_end + length].to_vec())
}

/// Waits until the peer closes `conn` (EOF or reset), draining what it sends; the time taken.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut sink = [0u8; 65536];
    loop {
        match tokio::time::timeout_at((start + limit).into(), conn.read(&mut sink)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios

/// Headers trickled a byte at a time, and connections that send nothing, are closed at the
/// header timeout while other clients are served; an idle keep-alive connection lives past the
/// header timeout and is closed at the idle timeout.
#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_timeout() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(
        &up,
        &[
            "--header-read-timeout-ms",
            "1000",
            "--idle-timeout-ms",
            "4000",
        ],
    )
    .await;
    let request = raw_post(&chat_body("ok", false));
    let mut trickles = Vec::new();
    for _ in 0..50 {
        let mut conn = TcpStream::connect(edge.addr).await.unwrap();
        let request = request.clone();
        trickles.push(tokio::spawn(async move {
            let start = Instant::now();
            // One byte every 100 ms: the whole head would take several seconds.
            for byte in &request {
                if conn.write_all(&[*byte]).await.is_err() {
                    break;
                }
                let mut probe = [0u8; 1024];
                match tokio::time::timeout(Duration::from_millis(100), conn.read(&mut probe)).await
                {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(_)) => panic!("the edge answered a trickled head"),
                    Err(_) => {}
                }
                assert!(
                    start.elapsed() < CALL,
                    "the trickled connection stayed open"
                );
            }
            start.elapsed()
        }));
    }
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(edge.addr).await.unwrap());
    }
    // Meanwhile the edge serves others.
    for i in 0..5 {
        edge.assert_healthy(&format!("serving during slowloris #{i}"))
            .await;
    }
    let mut worst = Duration::ZERO;
    for t in trickles {
        worst = worst.max(t.await.unwrap());
    }
    for conn in &mut silent {
        let took = closed_within(conn, Duration::from_secs(5))
            .await
            .expect("a silent connection was closed");
        worst = worst.max(took);
    }
    eprintln!("slowloris: 50 trickled + 50 silent connections closed, slowest after {worst:?}");
    assert!(
        worst < Duration::from_millis(3_000),
        "closed only after {worst:?}"
    );

    // A keep-alive connection idles longer than the header timeout and is reused.
    let mut conn = TcpStream::connect(edge.addr).await.unwrap();
    conn.write_all(&request).await.unwrap();
    assert_eq!(read_response(&mut conn).await.0, 200);
    let mut probe = [0u8; 16];
    let early = tokio::time::timeout(Duration::from_millis(2_000), conn.read(&mut probe)).await;
    assert!(
        early.is_err(),
        "idle keep-alive connection closed at the header timeout"
    );
    conn.write_all(&request).await.unwrap();
    assert_eq!(read_response(&mut conn).await.0, 200, "reused connection");
    let took = closed_within(&mut conn, Duration::from_secs(8))
        .await
        .expect("idle connection closed");
    eprintln!("idle keep-alive connection closed after {took:?} (idle timeout 4 s)");
    assert!(
        took >= Duration::from_millis(3_500),
        "closed too early: {took:?}"
    );
    edge.assert_healthy("slowloris").await;
}

/// A body trickled slower than the body timeout gets an OpenAI-shaped 408 and the connection
/// is closed.
#[tokio::test]
async fn trickled_body_gets_408() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &["--body-read-timeout-ms", "1000"]).await;
    let body = chat_body("ok", false);
    let mut conn = TcpStream::connect(edge.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let (mut reader, mut writer) = conn.into_split();
    let trickle = tokio::spawn(async move {
        for byte in body.as_bytes() {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut response = Vec::new();
    tokio::time::timeout(CALL, reader.read_to_end(&mut response))
        .await
        .expect("the edge closed the connection")
        .ok();
    let took = start.elapsed();
    trickle.abort();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let json = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let error: Value = serde_json::from_str(json).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["code"], "request_timeout");
    eprintln!("trickled body answered 408 and closed after {took:?} (body timeout 1 s)");
    assert!(took < Duration::from_secs(3), "{took:?}");
    edge.assert_healthy("trickled body").await;
}

/// A client that reads a stream slowly backpressures the upstream (nothing buffers without
/// bound), keeps its stream while it reads (longer than the idle timeout), and is cut once it
/// stops reading for the idle timeout, which cancels the upstream stream.
#[tokio::test]
async fn slow_reader_backpressures_the_upstream() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &["--idle-timeout-ms", "4000"]).await;
    let rss_before = edge.rss_mib();
    let mut conn = TcpStream::connect(edge.addr).await.unwrap();
    conn.write_all(&raw_post(&chat_body("endless", true)))
        .await
        .unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(CALL, conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Stop reading: production must level off.
    let mut last = up.produced.load(Ordering::SeqCst);
    let mut steady = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while steady < 3 {
        assert!(
            Instant::now() < deadline,
            "the upstream never stopped producing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = up.produced.load(Ordering::SeqCst);
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
    }
    let rss_stalled = edge.rss_mib();
    eprintln!(
        "slow reader: upstream produced {:.1} MiB before backpressure held it; edge RSS {rss_before:.1} -> {rss_stalled:.1} MiB",
        last as f64 / (1024.0 * 1024.0)
    );
    assert!(last < 64 * 1024 * 1024, "{last} bytes buffered");
    assert!(
        rss_stalled - rss_before < 32.0,
        "edge memory grew by {:.1} MiB",
        rss_stalled - rss_before
    );
    // Another client is unaffected.
    edge.assert_healthy("a stalled reader").await;

    // Read slowly (~3 MiB/s: the edge's socket buffer still drains often enough) for longer
    // than the idle timeout: the stream goes on.
    let start = Instant::now();
    let mut read = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while start.elapsed() < Duration::from_secs(6) {
        let n = tokio::time::timeout(CALL, conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the edge cut a stream that was being read");
        read += n;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.open.load(Ordering::SeqCst), 1, "the stream was cut");
    eprintln!(
        "slow reader: read {:.1} MiB over {:?}, stream kept",
        read as f64 / (1024.0 * 1024.0),
        start.elapsed()
    );

    // Stop reading for good: once no write has gone through for the idle timeout (the edge's
    // writes may already have waited a while), the stream is cut.
    let stalled = Instant::now();
    wait_for(
        Duration::from_secs(12),
        "the stalled stream to be cut",
        || async { (up.open.load(Ordering::SeqCst) == 0).then_some(()) },
    )
    .await
    .unwrap();
    eprintln!(
        "slow reader: a reader that stopped was cut after {:?} (idle timeout 4 s)",
        stalled.elapsed()
    );
    edge.assert_healthy("a cut slow reader").await;
}

/// A client that goes away mid-stream, or before the head, cancels the upstream request, and
/// the edge's in-flight gauge returns to zero.
#[tokio::test]
async fn abort_cancels_the_upstream_and_leaks_nothing() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &[]).await;
    for round in 0..20 {
        let resp = client()
            .post(edge.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(chat_body("endless", true))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(first.starts_with(b"data: "), "round {round}");
        drop(body);
    }
    let aborted = Instant::now();
    wait_for(
        Duration::from_secs(5),
        "20 aborted streams to be cancelled upstream",
        || async {
            (up.open.load(Ordering::SeqCst) == 0 && up.dropped.load(Ordering::SeqCst) == 20)
                .then_some(())
        },
    )
    .await
    .unwrap();
    eprintln!(
        "abort mid-stream: 20 upstream streams cancelled within {:?}",
        aborted.elapsed()
    );

    // Gone before the head: the edge is still waiting for the upstream's first byte.
    for _ in 0..10 {
        let mut conn = TcpStream::connect(edge.addr).await.unwrap();
        conn.write_all(&raw_post(&chat_body("slow-head", false)))
            .await
            .unwrap();
        wait_for(
            Duration::from_secs(5),
            "the request to reach the upstream",
            || async { (up.open.load(Ordering::SeqCst) == 1).then_some(()) },
        )
        .await
        .unwrap();
        drop(conn);
        wait_for(
            Duration::from_secs(5),
            "the waiting request to be cancelled",
            || async { (up.open.load(Ordering::SeqCst) == 0).then_some(()) },
        )
        .await
        .unwrap();
    }
    wait_for(
        Duration::from_secs(5),
        "in-flight requests to return to 0",
        || async { (edge.metric("in_flight_requests", "").await == 0.0).then_some(()) },
    )
    .await
    .unwrap();
    let gone = edge.metric("streams_total", "ClientGone").await;
    assert!(gone >= 20.0, "streams ended by the client: {gone}");
    edge.assert_healthy("aborts").await;
}

/// Bodies that are huge, deeply nested, not UTF-8, not JSON or empty get a clear OpenAI-shaped
/// error, and the edge goes on serving.
#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &[]).await;
    let nested =
        |open: &str, n: usize| format!("{{\"model\":\"ok\",\"messages\":{}", open.repeat(n));
    let mut huge = br#"{"model":"ok","messages":[{"role":"user","content":""#.to_vec();
    huge.resize(11 * 1024 * 1024, b'a');
    huge.extend_from_slice(br#""}]}"#);
    // (case, body, status, code, message fragment)
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "huge",
            huge,
            413,
            "request_too_large",
            "larger than the limit",
        ),
        (
            "nested arrays",
            "[".repeat(100_000).into_bytes(),
            400,
            "invalid_json",
            "parse the JSON",
        ),
        (
            "nested objects",
            "{\"a\":".repeat(100_000).into_bytes(),
            400,
            "invalid_json",
            "parse the JSON",
        ),
        (
            "nested in a field",
            nested("[", 100_000).into_bytes(),
            400,
            "invalid_json",
            "parse the JSON",
        ),
        // Valid JSON, just deep: the edge checks it without recursing, and it is not an object.
        (
            "closed nesting",
            format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes(),
            400,
            "invalid_json",
            "JSON object",
        ),
        (
            "invalid utf-8",
            b"{\"model\":\"ok\",\"messages\":\"\xff\xfe\"}".to_vec(),
            400,
            "invalid_json",
            "parse the JSON",
        ),
        (
            "invalid utf-8 key",
            b"{\"\xc3\x28\":1,\"model\":\"ok\"}".to_vec(),
            400,
            "invalid_json",
            "parse the JSON",
        ),
        (
            "not json",
            b"model=ok&messages=hi".to_vec(),
            400,
            "invalid_json",
            "parse the JSON",
        ),
        ("empty", Vec::new(), 400, "invalid_json", "parse the JSON"),
        (
            "not an object",
            b"[1,2,3]".to_vec(),
            400,
            "invalid_json",
            "JSON object",
        ),
        (
            "undecodable key",
            br#"{"\ud800":1,"model":"ok"}"#.to_vec(),
            400,
            "invalid_json",
            "parse the JSON",
        ),
        (
            "nul bytes",
            b"\0\0\0\0".to_vec(),
            400,
            "invalid_json",
            "parse the JSON",
        ),
    ];
    for (case, body, status, code, fragment) in cases {
        let resp = client()
            .post(edge.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(resp.status().as_u16(), status, "{case}");
        let error: Value = resp.json().await.unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            error["error"]["type"], "invalid_request_error",
            "{case}: {error}"
        );
        assert_eq!(error["error"]["code"], code, "{case}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{case}: {message}");
        assert!(
            message.len() < 300,
            "{case}: message is {} bytes",
            message.len()
        );
        edge.assert_healthy(case).await;
    }
    // Deep but valid JSON inside a field is passed on untouched (the edge never parses it).
    let deep = format!(
        "{{\"model\":\"ok\",\"messages\":{}{}}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let resp = client()
        .post(edge.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    edge.assert_healthy("deep valid nesting in a field").await;
    // A huge body announced but never sent whole is refused from its length alone.
    let mut conn = TcpStream::connect(edge.addr).await.unwrap();
    conn.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: e\r\ncontent-type: application/json\r\n\
          content-length: 100000000000\r\n\r\n{",
    )
    .await
    .unwrap();
    let (status, body) = read_response(&mut conn).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    edge.assert_healthy("an announced huge body").await;
}

/// Raises this process's open-file limit to its hard limit (the test holds ~12,000 sockets).
fn raise_fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (soft, hard) = (nums[0], nums[1]);
    if soft < hard {
        let status = Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={hard}:{hard}"),
            ])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot raise the open-file limit from {soft} to {hard}"
        );
    }
    hard
}

/// 10,000 idle keep-alive connections and, at the same time, 1,000 concurrent streams: all
/// served, the idle ones still usable after, and the edge's memory reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_and_a_thousand_streams() {
    const IDLE: usize = 10_000;
    const STREAMS: usize = 1_000;
    let limit = raise_fd_limit();
    assert!(
        limit >= 13_000,
        "the open-file limit {limit} is too low for {IDLE} + {STREAMS} connections"
    );
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &["--max-connections", "12000"]).await;
    let started = Instant::now();
    let rss_start = edge.rss_mib();

    // Open the idle connections, each after one request so it is a real keep-alive connection.
    let liveliness = b"GET /health/liveliness HTTP/1.1\r\nhost: edge\r\n\r\n";
    let addr = edge.addr;
    let idle: Vec<TcpStream> = futures::stream::iter(0..IDLE)
        .map(|_| async move {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.write_all(liveliness).await.unwrap();
            assert_eq!(read_response(&mut conn).await.0, 200);
            conn
        })
        .buffer_unordered(200)
        .collect()
        .await;
    let rss_idle = edge.rss_mib();
    let fds_idle = edge.open_fds();
    eprintln!(
        "{IDLE} idle keep-alive connections open after {:?}: edge RSS {rss_start:.1} -> {rss_idle:.1} MiB, {fds_idle} fds",
        started.elapsed()
    );
    assert!(fds_idle >= IDLE, "the edge holds only {fds_idle} fds");

    // 1,000 streams at once: each gets its first event, then waits on the upstream's gate.
    let streams_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<()>(STREAMS);
    let mut tasks = Vec::new();
    for _ in 0..STREAMS {
        let client = streams_client.clone();
        let url = edge.url("/v1/chat/completions");
        let first_tx = first_tx.clone();
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("content-type", "application/json")
                .body(chat_body("gated", true))
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
            let mut body = resp.bytes_stream();
            let mut text = Vec::new();
            let mut announced = false;
            while let Some(chunk) = body.next().await {
                text.extend_from_slice(&chunk?);
                if !announced && text.windows(5).any(|w| w == b"first") {
                    announced = true;
                    let _sent = first_tx.send(()).await;
                }
            }
            anyhow::ensure!(text.ends_with(b"data: [DONE]\n\n"), "stream did not finish");
            Ok(())
        }));
    }
    drop(first_tx);
    let stream_start = Instant::now();
    for i in 0..STREAMS {
        tokio::time::timeout(Duration::from_secs(60), first_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {i} of {STREAMS} streams started"))
            .unwrap_or_else(|| panic!("a stream failed before its first event ({i} started)"));
    }
    assert_eq!(up.open.load(Ordering::SeqCst), STREAMS);
    let rss_streams = edge.rss_mib();
    let fds_streams = edge.open_fds();
    eprintln!(
        "{STREAMS} concurrent streams open after {:?} beside {IDLE} idle connections: edge RSS {rss_streams:.1} MiB, {fds_streams} fds",
        stream_start.elapsed()
    );
    up.gate.send_replace(true);
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => panic!("a stream failed: {e:#}"),
        }
    }
    assert_eq!(ok, STREAMS);

    // The idle connections still work (a sample: each answers a request).
    let mut idle = idle;
    for conn in idle.iter_mut().step_by(IDLE / 100) {
        conn.write_all(liveliness).await.unwrap();
        assert_eq!(read_response(conn).await.0, 200);
    }
    let peak = edge.status_kib("VmHWM") as f64 / 1024.0;
    eprintln!(
        "edge RSS: start {rss_start:.1} MiB, {IDLE} idle {rss_idle:.1} MiB, +{STREAMS} streams {rss_streams:.1} MiB, peak {peak:.1} MiB; whole run {:?}",
        started.elapsed()
    );
    assert!(peak < 1024.0, "edge peak RSS {peak:.1} MiB");
    drop(idle);
    edge.assert_healthy("10k idle + 1k streams").await;
}

/// With a connection cap, connections past it wait in the backlog and are served once others
/// close.
#[tokio::test]
async fn connections_past_the_cap_wait_their_turn() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &["--max-connections", "4"]).await;
    let liveliness = b"GET /health/liveliness HTTP/1.1\r\nhost: edge\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = TcpStream::connect(edge.addr).await.unwrap();
        conn.write_all(liveliness).await.unwrap();
        assert_eq!(read_response(&mut conn).await.0, 200);
        held.push(conn);
    }
    let mut fifth = TcpStream::connect(edge.addr).await.unwrap();
    fifth.write_all(liveliness).await.unwrap();
    let mut probe = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), fifth.read(&mut probe)).await;
    assert!(early.is_err(), "a fifth connection was served past the cap");
    held.pop();
    assert_eq!(read_response(&mut fifth).await.0, 200);
    drop(held);
    drop(fifth);
    edge.assert_healthy("the connection cap").await;
}

/// `--workers 3` runs three worker threads, and keep-alive connections handed to each are all
/// served, request after request.
#[tokio::test]
async fn connections_are_served_by_every_worker() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &["--workers", "3"]).await;
    let pid = edge.child.id();
    let mut workers: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("edge-worker-"))
        .collect();
    workers.sort();
    assert_eq!(workers, ["edge-worker-0", "edge-worker-1", "edge-worker-2"]);
    let request = raw_post(&chat_body("ok", false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut conn = TcpStream::connect(edge.addr).await.unwrap();
        let request = request.clone();
        clients.push(tokio::spawn(async move {
            for _ in 0..20 {
                conn.write_all(&request).await.unwrap();
                assert_eq!(read_response(&mut conn).await.0, 200);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    eprintln!(
        "6 connections x 20 requests over 3 workers in {:?}",
        started.elapsed()
    );
    edge.assert_healthy("three workers").await;
}

/// SIGTERM stops accepting at once but lets an in-flight stream finish; then the process exits
/// cleanly.
#[tokio::test]
async fn shutdown_drains_in_flight_streams() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &[]).await;
    let resp = client()
        .post(edge.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(chat_body("gated", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));
    let term = Command::new("kill")
        .args(["-TERM", &edge.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // New connections are refused once the listener is closed.
    wait_for(
        Duration::from_secs(5),
        "the edge to stop accepting",
        || async { TcpStream::connect(edge.addr).await.is_err().then_some(()) },
    )
    .await
    .unwrap();
    edge.assert_alive();
    up.gate.send_replace(true);
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        rest.ends_with(b"data: [DONE]\n\n"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = edge.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the edge did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(status.success(), "the edge exited with {status}");
}

/// HTTP/2 with prior knowledge is served by the same listener, under the same timeouts.
#[tokio::test]
async fn http2_is_served_too() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &[]).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(CALL)
        .build()
        .unwrap();
    for stream in [false, true] {
        let resp = h2
            .post(edge.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(chat_body("ok", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains("Hello"), "{text}");
    }
    edge.assert_healthy("HTTP/2").await;
}

/// Heads that are huge, have too many fields or are not HTTP are refused by the server itself
/// (431 or 400, then closed), never held or crashing.
#[tokio::test]
async fn malformed_heads_are_refused() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(&up, &[]).await;
    let huge = format!(
        "GET /health/liveliness HTTP/1.1\r\nhost: e\r\nx-big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let many = format!(
        "GET /health/liveliness HTTP/1.1\r\nhost: e\r\n{}\r\n",
        (0..500)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let garbage = "\u{1}\u{2}NOT HTTP AT ALL\r\n\r\n".to_owned();
    let bad_length =
        "POST /v1/chat/completions HTTP/1.1\r\nhost: e\r\ncontent-length: -5\r\n\r\n".to_owned();
    let both = "POST /v1/chat/completions HTTP/1.1\r\nhost: e\r\ncontent-length: 5\r\n\
                transfer-encoding: chunked\r\n\r\n0\r\n\r\n"
        .to_owned();
    // (case, bytes, acceptable statuses)
    let cases: [(&str, String, &[u16]); 5] = [
        ("1 MiB header", huge, &[431]),
        ("500 header fields", many, &[431]),
        ("not HTTP", garbage, &[400]),
        ("negative content-length", bad_length, &[400]),
        ("content-length and chunked", both, &[400]),
    ];
    for (case, bytes, statuses) in cases {
        let mut conn = TcpStream::connect(edge.addr).await.unwrap();
        // The edge may answer and close before it has read everything; a reset is fine then.
        let _written = conn.write_all(bytes.as_bytes()).await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(CALL, conn.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "{case}: the connection was held open");
        let text = String::from_utf8_lossy(&answer);
        let status: Option<u16> = text.get(9..12).and_then(|s| s.parse().ok());
        assert!(
            status.is_none_or(|s| statuses.contains(&s)),
            "{case}: answered {text}"
        );
        eprintln!(
            "{case}: {}",
            status.map_or("closed without an answer".to_owned(), |s| s.to_string())
        );
        edge.assert_healthy(case).await;
    }
}

/// A key limited to 2 concurrent requests: 20 streams aborted mid-way and 10 requests
/// abandoned before their head all give their slot back, so two streams at once still fit.
/// (An in-process edge: key limits need no control plane there.)
#[tokio::test]
async fn aborted_requests_release_the_keys_concurrency_slot() {
    const KEY: &str = "sy_live_hostileclientsconcurrency";
    let up = Upstream::start().await;
    let mut table = up.table();
    table.keys.push(switchyard_proto::v1::ClientKey {
        id: "limited".into(),
        sha256: switchyard_tests::edge_harness::key_hash(KEY),
        name: "limited".into(),
        limits: Some(switchyard_proto::v1::Limits {
            max_concurrent: 2,
            ..Default::default()
        }),
        ..Default::default()
    });
    let edge = switchyard_tests::edge_harness::TestEdge::start(
        switchyard_edge::Config::default(),
        Some(table),
    )
    .await
    .unwrap();
    let post = |model: &str, stream: bool| {
        client()
            .post(edge.v1("chat/completions"))
            .header("content-type", "application/json")
            .bearer_auth(KEY)
            .body(chat_body(model, stream))
    };
    for round in 0..20 {
        let resp = post("endless", true).send().await.unwrap();
        assert_eq!(resp.status(), 200, "round {round}");
        let mut body = resp.bytes_stream();
        assert!(body.next().await.unwrap().is_ok());
    }
    wait_for(
        Duration::from_secs(5),
        "aborted streams to be cancelled",
        || async { (up.open.load(Ordering::SeqCst) == 0).then_some(()) },
    )
    .await
    .unwrap();
    for _ in 0..10 {
        let pending = tokio::spawn(post("slow-head", false).send());
        wait_for(
            Duration::from_secs(5),
            "the request to reach the upstream",
            || async { (up.open.load(Ordering::SeqCst) >= 1).then_some(()) },
        )
        .await
        .unwrap();
        pending.abort();
        wait_for(
            Duration::from_secs(5),
            "the upstream request to be cancelled",
            || async { (up.open.load(Ordering::SeqCst) == 0).then_some(()) },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        edge.state.metrics().in_flight().get(),
        0,
        "in-flight gauge leaked"
    );
    // Two at once fit (a leaked slot would make one of them 429).
    let a = post("gated", true).send().await.unwrap();
    let b = post("gated", true).send().await.unwrap();
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    // A third does not: the limit is really enforced.
    let c = post("ok", false).send().await.unwrap();
    assert_eq!(c.status(), 429);
    up.gate.send_replace(true);
    for resp in [a, b] {
        assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    let after = post("ok", false).send().await.unwrap();
    assert_eq!(after.status(), 200);
}

/// A stream whose upstream is silent for longer than the header and idle timeouts between
/// events is not cut: a connection with a request in progress is never idle.
#[tokio::test]
async fn slow_upstream_streams_outlive_the_connection_timeouts() {
    let up = Upstream::start().await;
    let mut edge = EdgeProcess::start(
        &up,
        &[
            "--header-read-timeout-ms",
            "500",
            "--idle-timeout-ms",
            "1000",
        ],
    )
    .await;
    let started = Instant::now();
    let resp = edge
        .post(chat_body("slow-stream", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for part in ["part 0", "part 1", "part 2"] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    eprintln!(
        "a stream with 1.5 s silences lasted {:?} under a 1 s idle timeout",
        started.elapsed()
    );
    edge.assert_healthy("a slow upstream stream").await;
}
