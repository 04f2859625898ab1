//! A three-voter control plane of real processes on loopback: losing the leader, restarting
//! everything, a partition, and membership changes while an edge serves.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::views::NewEndpoint;
use switchyard_tests::cluster::{Cluster, Start};
use switchyard_tests::fake::FakeOllama;
use switchyard_tests::harness::{edge_models, wait_for};
use tokio::sync::watch;

fn endpoint(id: &str, url: &str, models: &[&str]) -> NewEndpoint {
    NewEndpoint {
        id: id.into(),
        url: url.into(),
        models: models.iter().map(|m| m.to_string()).collect(),
        ..Default::default()
    }
}

/// Writes `id` through the first voter (in `order`) that acknowledges it within 2 s.
async fn write_any(cluster: &Cluster, order: &[u64], id: &str) -> bool {
    for v in order {
        let voter = cluster.voter(*v);
        if !voter.running() {
            continue;
        }
        let Ok(client) = voter.admin() else { continue };
        let body = endpoint(id, "http://10.0.0.1:8000/v1", &["m"]);
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(2), client.add_endpoint(&body)).await
        {
            return true;
        }
    }
    false
}

async fn endpoint_ids(client: &AdminClient) -> Option<BTreeSet<String>> {
    let list = client.endpoints().await.ok()?;
    Some(list.into_iter().map(|e| e.id).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3, false).await?;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
    let mut acked = Vec::new();
    let mut order: Vec<u64> = vec![1, 2, 3];
    let mut killed_at = None;
    let mut failover = None;
    // Bounded: 60 writes, at most 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..60 {
        assert!(Instant::now() < deadline, "writes took too long");
        if i == 20 {
            cluster.kill(leader);
            killed_at = Some(Instant::now());
        }
        let id = format!("w{i}");
        // Retry the same write until acknowledged, for at most 10 s.
        let started = Instant::now();
        loop {
            if write_any(&cluster, &order, &id).await {
                acked.push(id.clone());
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "write {id} never acknowledged"
            );
            order.rotate_left(1);
        }
        if let (Some(at), None) = (killed_at, failover) {
            failover = Some(at.elapsed());
        }
    }
    let failover = failover.unwrap_or_default();
    eprintln!("failover (leader kill -> first acknowledged write): {failover:?}");
    assert!(
        failover < Duration::from_secs(3),
        "writes resumed after {failover:?}"
    );

    // Every acknowledged write is on every live voter.
    for v in cluster.voters.iter().filter(|v| v.running()) {
        let client = v.admin()?;
        wait_for(
            Duration::from_secs(10),
            "every acknowledged write",
            || async {
                let ids = endpoint_ids(&client).await?;
                acked.iter().all(|a| ids.contains(a)).then_some(())
            },
        )
        .await?;
    }
    // The killed voter comes back and catches up.
    cluster.restart(leader).await?;
    let digest = cluster.wait_converged(Duration::from_secs(20)).await?;
    assert_eq!(digest.len(), 64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_and_restarting_every_voter_keeps_the_state() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3, false).await?;
    cluster.wait_leader(Duration::from_secs(10)).await?;
    let admin = cluster.voter(2).admin()?;
    // Enough writes to pass the snapshot threshold (50), so restart reads a snapshot too.
    for i in 0..70 {
        admin
            .add_endpoint(&endpoint(&format!("e{i}"), "http://10.0.0.2/v1", &["m"]))
            .await?;
    }
    admin
        .create_key(&switchyard_control_plane::admin::views::NewKey {
            name: "team".into(),
            ..Default::default()
        })
        .await?;
    let before = cluster.wait_converged(Duration::from_secs(10)).await?;
    let status = admin.status().await?;
    assert!(status.snapshot_index > 0, "a snapshot was built");
    for id in 1..=3 {
        cluster.stop(id).await?;
    }
    for id in 1..=3 {
        cluster.restart(id).await?;
    }
    cluster.wait_leader(Duration::from_secs(15)).await?;
    let after = cluster.wait_converged(Duration::from_secs(15)).await?;
    assert_eq!(before, after, "state digest after a full restart");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_cannot_commit_and_catches_up_after_healing() -> anyhow::Result<()> {
    let cluster = Cluster::start(3, true).await?;
    let old = cluster.wait_leader(Duration::from_secs(10)).await?;
    let fake = FakeOllama::start(&["llama3"]).await?;
    let url = format!("http://{}/v1", fake.addr());
    cluster
        .voter(old)
        .admin()?
        .add_endpoint(&endpoint("ollama", &url, &["llama3"]))
        .await?;
    cluster.wait_converged(Duration::from_secs(10)).await?;

    // An edge following the old leader serves throughout.
    let (stop, stopped) = watch::channel(false);
    let edge_listener = Cluster::listener().await?;
    let edge = edge_listener.local_addr()?;
    let edge_cfg = switchyard_edge::Config {
        control_plane: format!("http://{}", cluster.voter(old).grpc().unwrap_or(edge)),
        edge_name: "partition".into(),
        ..Default::default()
    };
    let mut until = stopped.clone();
    let edge_task = tokio::spawn(switchyard_edge::run(edge_cfg, edge_listener, async move {
        let _stop = until.wait_for(|s| *s).await;
    }));
    let client = reqwest::Client::new();
    wait_for(
        Duration::from_secs(10),
        "the edge to serve llama3",
        || async {
            edge_models(&client, edge)
                .await
                .filter(|m| m.iter().any(|x| x == "llama3"))
        },
    )
    .await?;

    // Cut the leader off from the others, both ways.
    let others: Vec<u64> = (1..=3).filter(|id| *id != old).collect();
    let old_ip = cluster.voter(old).ip();
    for id in &others {
        if let Some(p) = cluster.voter(*id).proxy() {
            p.block(&[old_ip]);
        }
    }
    let other_ips: Vec<_> = others.iter().map(|id| cluster.voter(*id).ip()).collect();
    if let Some(p) = cluster.voter(old).proxy() {
        p.block(&other_ips);
    }

    // The minority cannot commit.
    let minority = cluster.voter(old).admin()?;
    let lost = tokio::time::timeout(
        Duration::from_secs(2),
        minority.add_endpoint(&endpoint("minority", "http://10.0.0.9/v1", &["x"])),
    )
    .await;
    assert!(
        !matches!(lost, Ok(Ok(_))),
        "the isolated leader committed a write"
    );

    // The majority elects a new leader and commits.
    let majority = cluster.voter(others[0]).admin()?;
    let new = wait_for(
        Duration::from_secs(10),
        "a new leader in the majority",
        || async {
            let s = majority.status().await.ok()?;
            s.leader_id.filter(|l| *l != old)
        },
    )
    .await?;
    assert_ne!(new, old);
    majority
        .add_endpoint(&endpoint("majority", "http://10.0.0.8/v1", &["y"]))
        .await?;
    // The edge kept serving from its table.
    assert!(
        edge_models(&client, edge)
            .await
            .is_some_and(|m| m.iter().any(|x| x == "llama3"))
    );

    // Heal: the old leader steps down and catches up; the minority write is gone.
    for v in &cluster.voters {
        if let Some(p) = v.proxy() {
            p.heal();
        }
    }
    wait_for(
        Duration::from_secs(15),
        "the old leader to follow and catch up",
        || async {
            let s = minority.status().await.ok()?;
            let ids = endpoint_ids(&minority).await?;
            (s.role == "follower" && ids.contains("majority") && !ids.contains("minority"))
                .then_some(())
        },
    )
    .await?;
    cluster.wait_converged(Duration::from_secs(10)).await?;
    assert!(edge_models(&client, edge).await.is_some());
    stop.send_replace(true);
    edge_task.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_learner_promote_and_remove_while_an_edge_serves() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3, false).await?;
    cluster.wait_leader(Duration::from_secs(10)).await?;
    let fake = FakeOllama::start(&["llama3"]).await?;
    let admin1 = cluster.voter(1).admin()?;
    admin1
        .add_endpoint(&endpoint(
            "ollama",
            &format!("http://{}/v1", fake.addr()),
            &["llama3"],
        ))
        .await?;

    let (stop, stopped) = watch::channel(false);
    let edge_listener = Cluster::listener().await?;
    let edge = edge_listener.local_addr()?;
    let edge_cfg = switchyard_edge::Config {
        control_plane: format!("http://{}", cluster.voter(1).grpc().unwrap_or(edge)),
        edge_name: "membership".into(),
        ..Default::default()
    };
    let mut until = stopped.clone();
    let edge_task = tokio::spawn(switchyard_edge::run(edge_cfg, edge_listener, async move {
        let _stop = until.wait_for(|s| *s).await;
    }));
    let client = reqwest::Client::new();
    wait_for(
        Duration::from_secs(10),
        "the edge to serve llama3",
        || async {
            edge_models(&client, edge)
                .await
                .filter(|m| m.iter().any(|x| x == "llama3"))
        },
    )
    .await?;
    // Traffic through the edge for the whole change: every request must succeed.
    let traffic = tokio::spawn({
        let client = client.clone();
        let mut stopped = stopped.clone();
        async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            for _ in 0..10_000 {
                if *stopped.borrow_and_update() {
                    break;
                }
                let r = client
                    .post(format!("http://{edge}/v1/chat/completions"))
                    .json(&serde_json::json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => ok += 1,
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        }
    });

    let id = cluster.add_voter(Start::Wait).await?;
    let addr = cluster
        .voter(id)
        .advertised()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let members = admin1
        .add_member(&switchyard_control_plane::admin::views::NewMember {
            id,
            addr,
            voter: false,
        })
        .await?;
    assert!(
        members.iter().any(|m| m.id == id && !m.voter),
        "added as learner"
    );
    let members = admin1.promote_member(id).await?;
    assert!(members.iter().any(|m| m.id == id && m.voter), "promoted");
    let members = cluster.voter(3).admin()?.remove_member(2).await?;
    assert!(
        !members.iter().any(|m| m.id == 2),
        "removed through a follower"
    );
    cluster.kill(2);
    cluster.wait_voters(3, Duration::from_secs(10)).await?;
    // The new voter has the state, and the cluster still commits without voter 2.
    admin1
        .add_endpoint(&endpoint("after", "http://10.0.0.3/v1", &["z"]))
        .await?;
    let new_admin = cluster.voter(id).admin()?;
    wait_for(
        Duration::from_secs(10),
        "the new voter to apply",
        || async {
            endpoint_ids(&new_admin)
                .await
                .filter(|ids| ids.contains("ollama") && ids.contains("after"))
        },
    )
    .await?;

    stop.send_replace(true);
    let (ok, failed) = traffic.await?;
    edge_task.await??;
    assert!(ok > 0, "no traffic went through");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    Ok(())
}
