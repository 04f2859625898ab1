//! The etcd backend against a real etcd (Debian's `etcd-server`, 3.4) started by the test: two
//! control-plane nodes on one prefix share state, the routing-table watch, cooldown and lease
//! semantics, and both survive an etcd restart. Run with `--features etcd`.
#![cfg(feature = "etcd")]

#[cfg(test)]
mod etcd_backend {

    use std::path::{Path, PathBuf};
    use std::process::{Child, Command as Process, Stdio};
    use std::time::{Duration, Instant};

    use switchyard_control_plane::admin::digest;
    use switchyard_control_plane::etcd::{BackendKind, EtcdSettings};
    use switchyard_control_plane::lease::WindowRequest;
    use switchyard_control_plane::raft::Forwarded;
    use switchyard_control_plane::state::{Alias, Command, Cooldown, Outcome};
    use switchyard_control_plane::{Config, ControlPlane, Error};
    use tokio::net::TcpListener;

    const INSTALL: &str =
        "the etcd backend tests need the `etcd` binary: apt-get install -y etcd-server";

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        listener.local_addr().expect("local address").port()
    }

    /// One etcd member on loopback, its data directory kept across restarts.
    struct Etcd {
        child: Option<Child>,
        data: PathBuf,
        client_port: u16,
        peer_port: u16,
    }

    impl Etcd {
        fn start(dir: &Path) -> Self {
            match Process::new("etcd").arg("--version").output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => panic!("{INSTALL} (etcd --version failed: {:?})", out.status),
                Err(e) => panic!("{INSTALL} ({e})"),
            }
            let mut etcd = Self {
                child: None,
                data: dir.join("etcd-data"),
                client_port: free_port(),
                peer_port: free_port(),
            };
            etcd.spawn();
            etcd
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}", self.client_port)
        }

        fn spawn(&mut self) {
            let peer = format!("http://127.0.0.1:{}", self.peer_port);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.data.with_extension("log"))
                .expect("open the etcd log");
            let child = Process::new("etcd")
                .args(["--name", "sy-test"])
                .arg("--data-dir")
                .arg(&self.data)
                .args(["--listen-client-urls", &self.url()])
                .args(["--advertise-client-urls", &self.url()])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &format!("sy-test={peer}")])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{INSTALL} ({e})"));
            self.child = Some(child);
        }

        /// Waits until etcd answers a status request.
        async fn ready(&self) {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                    let mut client = etcd_client::Client::connect([self.url()], None).await?;
                    client.status().await
                })
                .await;
                if matches!(attempt, Ok(Ok(_))) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd did not become ready within 30 s; see {}",
                    self.data.with_extension("log").display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            self.kill();
        }
    }

    async fn node(dir: &Path, name: &str, node_id: u64, etcd: &Etcd, prefix: &str) -> ControlPlane {
        let cfg = Config {
            node_id,
            data_dir: dir.join(name),
            cluster_key_file: Some(dir.join("cluster.key")),
            mdns: false,
            backend: BackendKind::Etcd,
            etcd: Some(EtcdSettings {
                endpoints: vec![etcd.url()],
                prefix: prefix.into(),
                snapshot_every: 20,
                leader_ttl_s: 2,
                timeout_ms: 2_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        ControlPlane::start_with_admin(cfg, grpc, None)
            .await
            .unwrap_or_else(|e| panic!("node {name} did not start on etcd: {e}"))
    }

    /// Waits until every node's state has the same digest at a revision of at least `revision`.
    async fn converged(nodes: &[&ControlPlane], revision: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut digests = Vec::new();
            let mut revisions = Vec::new();
            for n in nodes {
                let state = n.state().await;
                revisions.push(state.revision);
                digests.push(digest(&state));
            }
            if revisions.iter().all(|r| *r >= revision) && digests.windows(2).all(|w| w[0] == w[1])
            {
                return digests[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "nodes did not converge on revision {revision} within 10 s: revisions {revisions:?}, digests {digests:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn revision_of(outcome: &Outcome) -> u64 {
        match outcome {
            Outcome::Changed { revision } | Outcome::Unchanged { revision } => *revision,
            other => panic!("expected a state change, got {other:?}"),
        }
    }

    fn alias(name: &str) -> Command {
        Command::PutAlias {
            alias: Alias {
                name: name.into(),
                target: "llama3".into(),
                source: Default::default(),
            },
        }
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_nodes_share_state_through_etcd_and_survive_an_etcd_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut etcd = Etcd::start(dir.path());
        etcd.ready().await;
        let prefix = "/switchyard-test";
        let a = node(dir.path(), "a", 1, &etcd, prefix).await;
        let b = node(dir.path(), "b", 2, &etcd, prefix).await;

        // Exactly one node holds the leader key, and both agree which.
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.consensus().is_leader() == b.consensus().is_leader() {
            assert!(Instant::now() < deadline, "no single leader within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            a.consensus().status().leader_id,
            b.consensus().status().leader_id,
            "both nodes name the same leader"
        );

        // A write on A is visible on B with the same digest, and B's table watch streams it.
        let mut table_b = b.consensus().watch_table();
        let before = table_b.borrow_and_update().version;
        let written = a.write(alias("fast")).await.expect("write on a");
        let revision = revision_of(&written);
        assert!(revision > before, "the write produced a new revision");
        let digest_1 = converged(&[&a, &b], revision).await;
        let streamed = tokio::time::timeout(
            Duration::from_secs(10),
            table_b.wait_for(|t| t.version >= revision),
        )
        .await
        .expect("b's table watch streams the new version within 10 s")
        .expect("table watch open")
        .version;
        assert!(streamed >= revision);
        assert!(b.state().await.aliases.contains_key("fast"));

        // Status names the backend's etcd view.
        let status = b.consensus().status();
        let etcd_status = status.etcd.expect("etcd status on the etcd backend");
        assert_eq!(etcd_status.endpoints, vec![etcd.url()]);
        assert!(etcd_status.revision > 0, "status reports etcd's revision");
        assert!(
            etcd_status.applied_seq >= 1,
            "status reports the applied log sequence"
        );

        // Membership is etcd's business.
        match a
            .consensus()
            .change_members(Forwarded::Remove { id: 2 })
            .await
        {
            Err(Error::BadRequest(message)) => {
                assert!(message.contains("managed by etcd"), "{message}")
            }
            other => panic!("expected a 'managed by etcd' error, got {other:?}"),
        }

        // A new cooldown never shortens an existing one, whichever node reports it.
        let far = i64::try_from(now_ms()).expect("ms fit") + 600_000;
        let cooldown = |until_ms: i64| Cooldown {
            endpoint_id: "groq".into(),
            credential_id: String::new(),
            model: "llama3".into(),
            until_ms,
            reason: "rate_limited".into(),
        };
        a.write(Command::ReportCooldowns {
            cooldowns: vec![cooldown(far)],
            at_ms: now_ms(),
        })
        .await
        .expect("cooldown on a");
        let shorter = b
            .write(Command::ReportCooldowns {
                cooldowns: vec![cooldown(far - 300_000)],
                at_ms: now_ms(),
            })
            .await
            .expect("shorter cooldown on b");
        converged(&[&a, &b], revision_of(&shorter)).await;
        for n in [&a, &b] {
            let state = n.state().await;
            let kept: Vec<i64> = state.cooldowns.values().map(|c| c.until_ms).collect();
            assert_eq!(kept, vec![far], "the longer cooldown stays");
        }

        // Lease grants from both nodes at once never exceed the limit, and use it all.
        let at_ms = now_ms();
        let ask = |edge: &str| Command::GrantWindow {
            request: WindowRequest {
                limit_key: "key:k1:rpm".into(),
                edge: edge.into(),
                want: 10,
                limit: 100,
                window_ms: 60_000,
                at_ms,
            },
        };
        let mut writes = Vec::new();
        for i in 0..15 {
            for (n, name) in [
                (a.consensus().clone(), "edge-a"),
                (b.consensus().clone(), "edge-b"),
            ] {
                let command = ask(&format!("{name}-{}", i % 3));
                writes.push(tokio::spawn(async move { n.write(command).await }));
            }
        }
        let mut granted = 0;
        for w in writes {
            match w.await.expect("task") {
                Ok(Outcome::WindowGranted { grant }) => {
                    granted += grant.amount;
                    assert!(grant.amount <= 10);
                }
                other => panic!("expected a window grant, got {other:?}"),
            }
        }
        assert_eq!(
            granted, 100,
            "30 asks of 10 from two nodes are granted exactly the limit of 100"
        );

        // Compaction: the log behind a snapshot is gone, and a new node rebuilds the same state.
        a.consensus().snapshot_now().await.expect("snapshot on a");
        b.consensus()
            .snapshot_now()
            .await
            .expect("snapshot on b (nothing new is fine)");
        let mut kv = etcd_client::Client::connect([etcd.url()], None)
            .await
            .expect("etcd client");
        let snapshot = kv
            .get(format!("{prefix}/snapshot"), None)
            .await
            .expect("read the snapshot");
        assert_eq!(snapshot.kvs().len(), 1, "a snapshot is stored in etcd");
        let log = kv
            .get(
                format!("{prefix}/log/"),
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .expect("count the log");
        assert_eq!(log.count(), 0, "the log behind the snapshot was deleted");
        let revision = a.state().await.revision;
        let c = node(dir.path(), "c", 3, &etcd, prefix).await;
        let digest_2 = converged(&[&a, &b, &c], revision).await;
        assert_ne!(digest_1, digest_2);

        // etcd restarts: writes fail clearly while it is down and the last table keeps serving.
        let served = b.consensus().watch_table().borrow().version;
        etcd.kill();
        let down = tokio::time::timeout(Duration::from_secs(15), a.write(alias("while-down")))
            .await
            .expect("a write while etcd is down answers within 15 s");
        match down {
            Err(e @ Error::Etcd(_)) => assert!(e.to_string().contains("etcd"), "{e}"),
            other => panic!("expected an etcd error while etcd is down, got {other:?}"),
        }
        assert_eq!(
            b.consensus().watch_table().borrow().version,
            served,
            "the last table keeps serving"
        );
        etcd.spawn();
        etcd.ready().await;

        // Writes resume (bounded retries while the client reconnects), state is intact, and
        // the other nodes' watches resume.
        let deadline = Instant::now() + Duration::from_secs(30);
        let resumed = loop {
            match b.write(alias("after-restart")).await {
                Ok(outcome) => break outcome,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "writes did not resume within 30 s of etcd's restart: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let revision = revision_of(&resumed);
        converged(&[&a, &b, &c], revision).await;
        for n in [&a, &b, &c] {
            let state = n.state().await;
            assert!(
                state.aliases.contains_key("fast"),
                "state from before the restart is intact"
            );
            assert!(state.aliases.contains_key("after-restart"));
            assert!(
                !state.aliases.contains_key("while-down"),
                "a write that failed was not applied"
            );
        }
        let mut table_a = a.consensus().watch_table();
        tokio::time::timeout(
            Duration::from_secs(10),
            table_a.wait_for(|t| t.version >= revision),
        )
        .await
        .expect("a's table watch resumes after the restart")
        .expect("table watch open");
        // A leader is held again after the restart.
        a.consensus()
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("a leader after the restart");

        for n in [a, b, c] {
            n.stop().await.expect("stop");
        }
    }
}
