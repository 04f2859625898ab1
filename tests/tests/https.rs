//! HTTPS without a terminating proxy: an edge started with `https_cert`/`https_key` serves the
//! OpenAI SDK (trusting only the test CA from `switchyard certs init`), refuses plain HTTP, and
//! serves a certificate swapped on disk to the next new connection; a voter's admin API over
//! HTTPS answers the admin verbs given `--https-ca`, and nothing without that CA.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use switchyard::cmd::admin::AdminArgs;
use switchyard::cmd::certs::{InitArgs, init};
use switchyard_control_plane::ControlPlane;
use switchyard_edge::Config;
use switchyard_tests::edge_harness::{Table, TestEdge};
use switchyard_tests::openai_fake::OpenAiFake;
use switchyard_tests::python::venv_python;
use tokio::net::TcpStream;

const KEY: &str = "sy_live_httpstesthttpstesthttps";
const ADMIN_TOKEN: &str = "https-test-admin-token-0123456789";

/// A CA and a certificate per node in `dir` (loopback names included), as an operator makes them.
fn certs(dir: &Path, nodes: &[&str]) -> anyhow::Result<()> {
    let args = InitArgs {
        dir: dir.to_path_buf(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        sans: Vec::new(),
        no_loopback: false,
        days: 30,
        force: false,
    };
    init(&args, &mut Vec::new())
}

/// The leaf certificate `addr` presents to a new connection that trusts only `ca`.
async fn served_leaf(addr: &str, ca: &Path) -> anyhow::Result<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1")?;
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await??;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    leaf.ok_or_else(|| anyhow::anyhow!("no certificate presented"))
}

fn leaf_in(path: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(CertificateDer::from_pem_file(path)?.as_ref().to_vec())
}

/// Replaces `to`'s certificate and key with `from`'s, the way a renewal rewrites them.
fn swap(dir: &Path, from: &str, to: &str) -> anyhow::Result<()> {
    for ext in ["pem", "key"] {
        let tmp = dir.join(format!("{to}.{ext}.new"));
        std::fs::copy(dir.join(format!("{from}.{ext}")), &tmp)?;
        std::fs::rename(&tmp, dir.join(format!("{to}.{ext}")))?;
    }
    Ok(())
}

const SDK_SCRIPT: &str = r#"
import os, ssl, httpx, openai
ctx = ssl.create_default_context(cafile=os.environ["SWITCHYARD_CA"])
client = openai.OpenAI(
    base_url=os.environ["SWITCHYARD_URL"],
    api_key=os.environ["SWITCHYARD_KEY"],
    http_client=httpx.Client(verify=ctx),
    max_retries=0,
)
answer = client.chat.completions.create(
    model="gpt-test", messages=[{"role": "user", "content": "hi"}]
)
print("answered:", bool(answer.choices[0].message.content))
chunks = client.chat.completions.create(
    model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
)
print("streamed:", sum(1 for _ in chunks) > 0)
# Without the test CA the edge's certificate is not trusted.
untrusting = openai.OpenAI(
    base_url=os.environ["SWITCHYARD_URL"], api_key=os.environ["SWITCHYARD_KEY"], max_retries=0
)
try:
    untrusting.models.list()
    print("untrusted: answered")
except openai.APIConnectionError:
    print("untrusted: refused")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_talks_https_to_the_edge_and_a_renewed_certificate_is_served()
-> anyhow::Result<()> {
    let python = tokio::task::spawn_blocking(venv_python).await?;
    let dir = tempfile::tempdir()?;
    let certs_dir = dir.path().join("certs");
    certs(&certs_dir, &["edge", "renewed"])?;
    let ca = certs_dir.join("ca.pem");

    let fake = OpenAiFake::start().await?;
    let table = Table::new(1)
        .endpoint("fake", &fake.base_url())
        .model("gpt-test", &[("fake", "gpt-test-up")])
        .key("k", KEY, |_| {})
        .build();
    let cfg = Config {
        https_cert: Some(certs_dir.join("edge.pem")),
        https_key: Some(certs_dir.join("edge.key")),
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table)).await?;
    assert!(edge.url.starts_with("https://127.0.0.1:"), "{}", edge.url);

    let out = tokio::process::Command::new(&python)
        .args(["-c", SDK_SCRIPT])
        .env("SWITCHYARD_URL", edge.v1(""))
        .env("SWITCHYARD_KEY", KEY)
        .env("SWITCHYARD_CA", &ca)
        .env_remove("SSL_CERT_FILE")
        .env_remove("OPENAI_API_KEY")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("answered: True"), "{stdout}\n{stderr}");
    assert!(stdout.contains("streamed: True"), "{stdout}\n{stderr}");
    assert!(stdout.contains("untrusted: refused"), "{stdout}\n{stderr}");

    // Plain HTTP on the HTTPS port gets no answer.
    let addr = edge.url.trim_start_matches("https://").to_owned();
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("http://{addr}/health"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // The certificate on disk is renewed: the next connection gets the new one.
    assert_eq!(
        served_leaf(&addr, &ca).await?,
        leaf_in(&certs_dir.join("edge.pem"))?
    );
    let renewed = leaf_in(&certs_dir.join("renewed.pem"))?;
    swap(&certs_dir, "renewed", "edge")?;
    assert_eq!(served_leaf(&addr, &ca).await?, renewed);
    // A broken pair on disk does not take the edge down: the last good one stays.
    std::fs::write(certs_dir.join("edge.key"), "not a key")?;
    assert_eq!(served_leaf(&addr, &ca).await?, renewed);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_https_to_the_admin_verbs() -> anyhow::Result<()> {
    switchyard_tests::harness::init();
    let dir = tempfile::tempdir()?;
    let certs_dir = dir.path().join("certs");
    certs(&certs_dir, &["cp"])?;
    let cfg = switchyard_control_plane::Config {
        data_dir: dir.path().join("data"),
        admin_tokens: vec![ADMIN_TOKEN.to_owned()],
        mdns: false,
        https_cert: Some(certs_dir.join("cp.pem")),
        https_key: Some(certs_dir.join("cp.key")),
        ..Default::default()
    };
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cp = ControlPlane::start_with_admin(cfg, grpc, Some(admin)).await?;
    cp.wait_for_leader(Duration::from_secs(10)).await?;
    let addr = cp
        .admin_addr()
        .ok_or_else(|| anyhow::anyhow!("no admin address"))?;

    let args = |ca: Option<&Path>| AdminArgs {
        server: format!("https://{addr}"),
        token: Some(ADMIN_TOKEN.to_owned()),
        token_dir: dir.path().join("data"),
        https_ca: ca.map(Path::to_path_buf),
        json: true,
    };
    let status = args(Some(&certs_dir.join("ca.pem")))
        .client()?
        .status()
        .await?;
    assert_eq!(status.role, "leader", "{status:?}");
    // Without the CA (the system's roots only) the voter's certificate is refused.
    let untrusted = args(None).client()?.status().await;
    assert!(untrusted.is_err(), "{untrusted:?}");
    // And plain HTTP on the HTTPS port is not served.
    let plain = switchyard_control_plane::admin::client::AdminClient::new(
        &format!("http://{addr}"),
        ADMIN_TOKEN,
    )?
    .status()
    .await;
    assert!(plain.is_err(), "{plain:?}");

    // A bad pair fails at start, naming the field.
    let bad = switchyard_control_plane::Config {
        data_dir: dir.path().join("bad"),
        https_cert: Some(certs_dir.join("cp.pem")),
        https_key: Some(certs_dir.join("missing.key")),
        ..Default::default()
    };
    let err = bad.validate().map(|()| "valid").unwrap_err().to_string();
    assert!(err.contains("https_key"), "{err}");
    cp.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchyard_up_serves_https_on_v1_and_the_admin_api() -> anyhow::Result<()> {
    use switchyard::up::{Up, UpConfig, UpExtras};
    switchyard_tests::harness::init();
    let dir = tempfile::tempdir()?;
    let certs_dir = dir.path().join("certs");
    certs(&certs_dir, &["box"])?;
    let cfg = UpConfig {
        data_dir: dir.path().join("data"),
        demo: true,
        agent: false,
        ..Default::default()
    };
    let edge = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin_addr = admin.local_addr()?;
    let extras = UpExtras {
        admin: Some(admin),
        bootstrap_key: Some(KEY.into()),
        https_cert: Some(certs_dir.join("box.pem")),
        https_key: Some(certs_dir.join("box.key")),
        ..Default::default()
    };
    let up = Up::start_with(cfg, edge, grpc, extras).await?;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs_dir.join("ca.pem"))?)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([ca])
        .build()?;
    let request =
        serde_json::json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]});
    let url = format!("https://{}/v1/chat/completions", up.edge_addr());
    let status = switchyard_tests::harness::wait_for(
        Duration::from_secs(20),
        "the demo model over HTTPS",
        || {
            let (client, request, url) = (&client, &request, &url);
            async move {
                let r = client
                    .post(url)
                    .bearer_auth(KEY)
                    .json(request)
                    .send()
                    .await
                    .ok()?;
                (r.status() == 200).then_some(r.status())
            }
        },
    )
    .await?;
    assert_eq!(status, 200);
    let admin = client
        .get(format!("https://{admin_addr}/api/v1/status"))
        .bearer_auth(std::fs::read_to_string(dir.path().join("data/admin.token"))?.trim())
        .send()
        .await?;
    assert_eq!(admin.status(), 200);
    up.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed_at_the_header_timeout()
-> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir()?;
    certs(dir.path(), &["edge"])?;
    let cfg = Config {
        https_cert: Some(dir.path().join("edge.pem")),
        https_key: Some(dir.path().join("edge.key")),
        header_read_timeout_ms: 300,
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, None).await?;
    let addr = edge.url.trim_start_matches("https://").to_owned();
    let mut stalled = TcpStream::connect(&addr).await?;
    // The first bytes of a TLS record header, then nothing.
    stalled.write_all(&[0x16, 0x03]).await?;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the stalled handshake was not closed: {read:?}"
    );
    // Others are served meanwhile and after.
    assert_eq!(
        served_leaf(&addr, &dir.path().join("ca.pem")).await?,
        leaf_in(&dir.path().join("edge.pem"))?
    );
    Ok(())
}
