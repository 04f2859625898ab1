//! mDNS across a real link: a control plane (+ edge) in one network namespace announces itself;
//! a node agent with no `--control-plane` in another namespace finds it, reports its local
//! server, and announces itself so the control plane's side lists it as a LAN node.
//!
//! Each side runs in a child process: this same test re-run inside `ip netns exec`, with its
//! role in the child's own environment. Needs root and
//! iproute2; without them the test fails and says so.

#![expect(
    clippy::print_stdout,
    reason = "the namespace children report to the parent on stdout"
)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use switchyard_node_agent::{Naming, ProbeTarget, ServerKind};
use switchyard_tests::discovery_cluster::{Cluster, RunningAgent, isolated_agent};
use switchyard_tests::discovery_fakes::FakeBackend;
use switchyard_tests::harness::{edge_models, init, wait_for};
use switchyard_tests::netns::{ADDR_A, NetnsPair};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

const ROLE_ENV: &str = "SWITCHYARD_MDNS_TEST_ROLE";
const NODE_ENV: &str = "SWITCHYARD_MDNS_TEST_AGENT_NODE";
const TOKEN: &str = "sy_join_mdns_test";
const MODEL: &str = "netns-model:latest";
/// Time for the whole exchange: announcements, browses (3 s each), reports, table push.
const DEADLINE: Duration = Duration::from_secs(60);

/// This test's name, which children run again with a role.
const TEST: &str = "agent_finds_the_control_plane_over_mdns_across_namespaces";

fn helper(namespace: &str, role: &str, node: &str) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new("ip")
        .args(["netns", "exec", namespace])
        .arg(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(NODE_ENV, node)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start a helper inside the namespace")
}

#[tokio::test]
async fn agent_finds_the_control_plane_over_mdns_across_namespaces() -> anyhow::Result<()> {
    // Inside a namespace, a child plays one side.
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("control-plane") => return control_plane_side().await,
        Ok("agent") => return agent_side().await,
        _ => {}
    }
    if !Path::new("/proc/self/ns/net").exists() {
        bail!("this test needs Linux network namespaces");
    }
    let pair = NetnsPair::create("mdns").context(
        "the mDNS test needs root and iproute2 to create two network namespaces \
         (`ip netns add`, a veth pair); it cannot run without them",
    )?;
    let agent_node = format!("netns-agent-{}", std::process::id());
    let control_plane = helper(&pair.a, "control-plane", &agent_node)?;
    let mut agent = helper(&pair.b, "agent", &agent_node)?;

    let finished = tokio::time::timeout(
        DEADLINE + Duration::from_secs(10),
        control_plane.wait_with_output(),
    )
    .await;
    let _killed = agent.start_kill();
    let agent_output =
        tokio::time::timeout(Duration::from_secs(10), agent.wait_with_output()).await;
    let agent_log = match agent_output {
        Ok(Ok(out)) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        _ => "(agent helper output unavailable)".to_owned(),
    };
    let output = finished
        .context("the control-plane side did not finish")?
        .context("the control-plane side failed to run")?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() || !log.contains("MDNS-SCENARIO-PASSED") {
        bail!(
            "control-plane side failed ({}):\n{log}\n--- agent side ---\n{agent_log}",
            output.status
        );
    }
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("MDNS-"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(pair);
    Ok(())
}

/// Namespace A: a control plane announced over mDNS, and an edge to see what gets routed.
async fn control_plane_side() -> anyhow::Result<()> {
    init();
    let agent_node = std::env::var(NODE_ENV)?;
    let started = std::time::Instant::now();
    let cluster = Cluster::start(Some(TOKEN), TcpListener::bind("0.0.0.0:0").await?).await?;
    let port: u16 = cluster
        .control_plane
        .addr()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("control plane address has no port")?;
    let announcement = switchyard_mdns::advertise_control_plane("netns-cp", port)?;
    let client = reqwest::Client::builder().no_proxy().build()?;

    // The agent in the other namespace found us and reported its server.
    wait_for(DEADLINE, "the agent's model at the edge", || async {
        edge_models(&client, cluster.edge)
            .await
            .is_some_and(|m| m.iter().any(|x| x == MODEL))
            .then_some(())
    })
    .await?;
    let state = cluster.control_plane.state().await;
    let endpoint = state
        .endpoints
        .values()
        .find(|e| e.models.iter().any(|m| m == MODEL))
        .context("no endpoint serves the model")?;
    println!(
        "MDNS-ROUTED endpoint {} from node {:?} after {:?}",
        endpoint.id,
        endpoint.node,
        started.elapsed()
    );
    // And it announces itself: `switchyard status` can list it as a LAN node.
    let agents = wait_for(DEADLINE, "the agent's own announcement", || async {
        let found = switchyard_mdns::browse_agents(Duration::from_secs(2))
            .await
            .ok()?;
        found.into_iter().find(|a| a.node == agent_node)
    })
    .await?;
    println!(
        "MDNS-AGENT-SEEN node {} at {:?} reporting to port {}",
        agents.node, agents.addresses, agents.port
    );
    if agents.addresses.first().map(ToString::to_string).as_deref()
        != Some(switchyard_tests::netns::ADDR_B)
    {
        bail!(
            "agent announced from {:?}, expected {} first",
            agents.addresses,
            switchyard_tests::netns::ADDR_B
        );
    }
    println!("MDNS-SCENARIO-PASSED");
    announcement.stop().await;
    cluster.stop().await
}

/// Namespace B: a local model server and an agent told nothing about the control plane.
async fn agent_side() -> anyhow::Result<()> {
    init();
    let node = std::env::var(NODE_ENV)?;
    let ollama = FakeBackend::start(ServerKind::Ollama, "127.0.0.1:0", &[MODEL]).await?;
    let mut cfg = isolated_agent("", &node, 300);
    cfg.join_token = TOKEN.to_owned();
    cfg.naming = Naming::NodeSuffix;
    cfg.discovery.mdns = true;
    cfg.discovery.local_scan = true;
    cfg.targets = vec![ProbeTarget::new(
        ServerKind::Ollama,
        "127.0.0.1",
        ollama.addr().port(),
    )];
    cfg.validate()?;
    let agent = RunningAgent::spawn(cfg);
    // Runs until the parent kills it; the bound keeps a lost helper from living forever.
    tokio::time::sleep(DEADLINE + Duration::from_secs(20)).await;
    println!("MDNS-AGENT-SIDE timed out waiting to be stopped (control plane at {ADDR_A})");
    agent.stop().await?;
    ollama.stop().await;
    Ok(())
}
