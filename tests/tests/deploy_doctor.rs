//! `switchyard doctor` against a real in-process `up`, and against things newcomers get wrong:
//! a wrong address, a wrong join token, an edge that is not there.

use std::time::Duration;

use switchyard::cmd::doctor::{self, DoctorArgs, Status, names};
use switchyard_control_plane::{Config, ControlPlane};
use switchyard_tests::harness::{edge_models, init, start_up, wait_for};
use tokio::net::TcpListener;

fn args(control_plane: &str, edge: &str) -> DoctorArgs {
    DoctorArgs {
        https_ca: None,
        control_plane: control_plane.to_owned(),
        join_token: None,
        edge: edge.to_owned(),
        api_key: None,
        chat: false,
        no_edge: false,
        quick: false,
        node_name: Some("doctor-test".into()),
        timeout_ms: 3_000,
        config: None,
        tls: Default::default(),
    }
}

fn status(report: &doctor::Report, name: &str) -> Status {
    report
        .get(name)
        .map_or_else(|| panic!("no {name:?} check in\n{report}"), |c| c.status)
}

/// An address nothing listens on (bound, then released).
async fn dead_addr() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_up_passes_every_check_including_a_chat() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let up = start_up(data.path(), true, None).await?;
    let edge = up.edge_addr();
    let client = reqwest::Client::new();
    wait_for(Duration::from_secs(10), "the demo model", || async {
        edge_models(&client, edge).await.filter(|m| !m.is_empty())
    })
    .await?;

    let mut a = args(up.grpc_addr(), &format!("http://{edge}/v1"));
    a.chat = true;
    let report = doctor::check(&a).await;
    assert!(report.ok(), "{report}");
    assert_eq!(
        status(&report, names::CONTROL_PLANE),
        Status::Pass,
        "{report}"
    );
    // `up` runs without a join token: accepted, with a warning to set one.
    assert_eq!(status(&report, names::JOIN_TOKEN), Status::Warn, "{report}");
    assert_eq!(status(&report, names::BACKENDS), Status::Pass, "{report}");
    assert_eq!(status(&report, names::CHAINS), Status::Pass, "{report}");
    assert_eq!(status(&report, names::EDGE_TABLE), Status::Pass, "{report}");
    assert_eq!(
        status(&report, names::TEST_REQUEST),
        Status::Pass,
        "{report}"
    );
    let text = report.to_string();
    assert!(text.contains("✓ test request succeeds"), "{text}");
    assert!(text.contains("a chat to demo answered"), "{text}");
    assert!(text.ends_with("all 6 checks passed"), "{text}");

    // A token given to a cluster that checks none is flagged too.
    let mut with_token = args(up.grpc_addr(), &format!("http://{edge}"));
    with_token.join_token = Some("any-token-at-all".into());
    let report = doctor::check(&with_token).await;
    assert_eq!(status(&report, names::JOIN_TOKEN), Status::Warn, "{report}");
    assert!(
        report.to_string().contains("so is any other token"),
        "{report}"
    );

    // --quick asks only the health endpoints.
    a.quick = true;
    let quick = doctor::check(&a).await;
    assert!(quick.ok(), "{quick}");
    assert_eq!(status(&quick, names::JOIN_TOKEN), Status::Skip);
    assert_eq!(status(&quick, names::EDGE_TABLE), Status::Pass);

    // A wrong edge address fails the edge checks only.
    let wrong_edge = args(up.grpc_addr(), &dead_addr().await?);
    let report = doctor::check(&wrong_edge).await;
    assert!(!report.ok());
    assert_eq!(
        status(&report, names::CONTROL_PLANE),
        Status::Pass,
        "{report}"
    );
    assert_eq!(status(&report, names::EDGE_TABLE), Status::Fail, "{report}");
    assert_eq!(
        status(&report, names::TEST_REQUEST),
        Status::Skip,
        "{report}"
    );
    up.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_fails_fast_with_a_hint() -> anyhow::Result<()> {
    init();
    let started = std::time::Instant::now();
    let report = doctor::check(&args(&dead_addr().await?, &dead_addr().await?)).await;
    assert!(!report.ok());
    assert_eq!(status(&report, names::CONTROL_PLANE), Status::Fail);
    assert_eq!(status(&report, names::JOIN_TOKEN), Status::Skip);
    assert_eq!(status(&report, names::BACKENDS), Status::Skip);
    assert_eq!(status(&report, names::EDGE_TABLE), Status::Fail);
    let text = report.to_string();
    assert!(text.contains("✗ control plane reachable"), "{text}");
    assert!(
        text.contains("Connection refused"),
        "the root cause is shown: {text}"
    );
    assert!(
        text.contains("→ is `switchyard control-plane` running"),
        "{text}"
    );
    assert!(text.ends_with("2 of 6 checks failed"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The edge's port given as the control plane: reachable over TCP, but not gRPC health.
    let data = tempfile::tempdir()?;
    let up = start_up(data.path(), true, None).await?;
    let edge = up.edge_addr().to_string();
    let report = doctor::check(&args(&edge, &edge)).await;
    assert_eq!(
        status(&report, names::CONTROL_PLANE),
        Status::Fail,
        "{report}"
    );
    up.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_token_is_checked_like_an_agent_would_present_it() -> anyhow::Result<()> {
    init();
    let data = tempfile::tempdir()?;
    let cfg = Config {
        data_dir: data.path().to_path_buf(),
        join_token: Some("the-right-token-0123456789".into()),
        ..Default::default()
    };
    let cp = ControlPlane::start(cfg, TcpListener::bind("127.0.0.1:0").await?).await?;
    cp.wait_for_leader(Duration::from_secs(10)).await?;
    let url = format!("http://{}", cp.addr());

    let mut a = args(&url, "unused");
    a.no_edge = true;
    let report = doctor::check(&a).await;
    assert_eq!(status(&report, names::JOIN_TOKEN), Status::Fail, "{report}");
    assert!(
        report.to_string().contains("pass it with --join-token"),
        "{report}"
    );

    a.join_token = Some("a-wrong-token".into());
    let report = doctor::check(&a).await;
    assert_eq!(status(&report, names::JOIN_TOKEN), Status::Fail, "{report}");
    assert!(
        report.to_string().contains("join token not accepted"),
        "{report}"
    );

    a.join_token = Some("the-right-token-0123456789".into());
    let report = doctor::check(&a).await;
    assert_eq!(status(&report, names::JOIN_TOKEN), Status::Pass, "{report}");
    // No agent has reported and nothing is declared: the table is empty, and doctor says why.
    assert_eq!(status(&report, names::BACKENDS), Status::Fail, "{report}");
    assert!(
        report.to_string().contains("run `switchyard node-agent`"),
        "{report}"
    );
    assert_eq!(status(&report, names::EDGE_TABLE), Status::Skip);
    cp.stop().await?;
    Ok(())
}
