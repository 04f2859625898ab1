//! `switchyard top` under tmux against a live voter: it starts in a detached session, keys move
//! between its views (each checked on the captured screen), and `q` leaves it with exit status 0.

use std::time::Duration;

use serde_json::json;
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use switchyard_tests::cluster::{Cluster, READ_TOKEN};
use switchyard_tests::deploy::switchyard_bin;
use switchyard_tests::harness::wait_for;
use switchyard_tests::openai_fake::OpenAiFake;
use switchyard_tests::tmux::Tmux;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_each_view_and_quits_under_tmux() -> anyhow::Result<()> {
    let cluster = Cluster::start(1, false).await?;
    cluster.wait_leader(WAIT).await?;
    let voter = cluster.voter(1);
    let admin = voter.admin()?;
    let upstream = OpenAiFake::start().await?;
    admin
        .add_endpoint(&NewEndpoint {
            id: "dgx-vllm".into(),
            url: upstream.base_url(),
            models: vec!["llama3".into()],
            ..Default::default()
        })
        .await?;
    let key = admin
        .create_key(&NewKey {
            name: "team-a".into(),
            ..Default::default()
        })
        .await?;

    // Some traffic through an edge, so usage (where the API records it) is not empty.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let edge = format!("http://{}", listener.local_addr()?);
    let grpc = voter
        .grpc()
        .ok_or_else(|| anyhow::anyhow!("no grpc address"))?;
    let cfg = switchyard_edge::Config {
        control_plane: format!("http://{grpc}"),
        edge_name: "edge-a".into(),
        ..Default::default()
    };
    tokio::spawn(switchyard_edge::run(cfg, listener, std::future::pending()));
    let client = reqwest::Client::new();
    wait_for(WAIT, "the edge to serve team-a", || async {
        let response = client
            .post(format!("{edge}/v1/chat/completions"))
            .bearer_auth(&key.secret)
            .json(&json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .ok()?;
        response.status().is_success().then_some(())
    })
    .await?;

    let command = format!(
        "{} top --server {} --token {READ_TOKEN} --interval-ms 300; echo top-exited-$?; sleep 60",
        switchyard_bin()?.display(),
        voter.admin_url()?,
    );
    let tmux = Tmux::start(&command, 120, 32)?;
    tmux.wait_for_screen(&["1 Cluster", "Members", "voter 1 at", "(answering)"], WAIT)
        .await?;
    tmux.send(&["Right"])?;
    tmux.wait_for_screen(&["no node agents have registered"], WAIT)
        .await?;
    tmux.send(&["3"])?;
    tmux.wait_for_screen(&["dgx-vllm", "healthy", "llama3", "Cooldowns"], WAIT)
        .await?;
    tmux.send(&["4"])?;
    tmux.wait_for_screen(&["DEPLOYMENTS", "dgx-vllm→llama3"], WAIT)
        .await?;
    tmux.send(&["5"])?;
    tmux.wait_for_screen(&["team-a", &key.key.id, "active"], WAIT)
        .await?;
    // Without a usage route on the voter, the view says so rather than drawing zeros.
    let usage_route = client
        .get(format!("{}/api/v1/usage?group_by=hour", voter.admin_url()?))
        .bearer_auth(READ_TOKEN)
        .send()
        .await?
        .status();
    tmux.send(&["Tab"])?;
    if usage_route == reqwest::StatusCode::NOT_FOUND {
        tmux.wait_for_screen(&["no usage recorded"], WAIT).await?;
    } else {
        tmux.wait_for_screen(
            &["Requests per hour", "Tokens per hour", "Mean latency"],
            WAIT,
        )
        .await?;
    }
    tmux.send(&["q"])?;
    tmux.wait_for_screen(&["top-exited-0"], WAIT).await?;
    Ok(())
}
