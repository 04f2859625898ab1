//! Storage failpoints: a crash between writing and committing (fsync) the raft log or the
//! applied state, then a reopen that must lose no acknowledged entry and show no partial one.
//!
//! Needs the `failpoints` feature:
//! `cargo test -p switchyard-control-plane --features failpoints --test failpoints`.
//!
//! A crash is a real one: the parent test runs this same test binary again as a child (only the
//! `child_*` test, selected with `--exact`), which writes to the store and then aborts the
//! process from inside the failpoint, between the redb write and its commit. The parent then
//! reopens the data directory. Without `SWITCHYARD_FAILPOINT_CHILD` the `child_*` tests do
//! nothing.
#![cfg(feature = "failpoints")]

#[cfg(test)]
mod storage_failpoints {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::Command as Process;
    use std::sync::Arc;
    use std::time::Duration;

    use openraft::entry::RaftEntry;
    use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
    use openraft::testing::blank_ent;
    use openraft::testing::log::{StoreBuilder, Suite};
    use openraft::{LogState, StorageError};
    use switchyard_control_plane::raft::{
        Consensus, LogStore, RaftSettings, StateMachine, TypeConfig,
    };
    use switchyard_control_plane::state::{Command, EndpointSpec, Source};
    use tempfile::TempDir;

    const CHILD: &str = "SWITCHYARD_FAILPOINT_CHILD";

    /// What the child does before it crashes, and where.
    fn child_job() -> Option<(String, PathBuf)> {
        let value = std::env::var(CHILD).ok()?;
        let (mode, dir) = value.split_once(':')?;
        Some((mode.to_string(), PathBuf::from(dir)))
    }

    /// Runs `mode` in a child process against `dir` and checks that it died by SIGABRT (the crash),
    /// not by finishing or by a test failure.
    fn crash_child(mode: &str, dir: &Path) {
        let exe = std::env::current_exe().unwrap();
        let out = Process::new(exe)
            .args([
                "--exact",
                "storage_failpoints::child_crashes_in_a_failpoint",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env(CHILD, format!("{mode}:{}", dir.display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "the child should have crashed in the failpoint: {stderr}"
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "the child should have died by SIGABRT: {:?} {stderr}",
            out.status
        );
        assert!(
            stderr.contains("crashing in failpoint"),
            "the child crashed elsewhere: {stderr}"
        );
    }

    fn crash_in(name: &'static str) {
        fail::cfg_callback(name, move || {
            eprintln!("crashing in failpoint {name}");
            std::process::abort();
        })
        .unwrap();
    }

    fn open_log(dir: &Path) -> (Arc<redb::Database>, LogStore) {
        let db = Arc::new(redb::Database::create(dir.join("raft.redb")).unwrap());
        let log = LogStore::open(db.clone()).unwrap();
        (db, log)
    }

    fn endpoint(id: &str) -> Command {
        Command::PutEndpoint {
            spec: EndpointSpec {
                id: id.into(),
                kind: "openai".into(),
                base_url: format!("http://10.0.0.1:8000/{id}/v1"),
                models: vec!["m".into()],
                weight: 1,
                source: Source::Api,
                credentials: Vec::new(),
                limits: Default::default(),
                upstream: Default::default(),
            },
            at_ms: 1,
        }
    }

    async fn single_voter(dir: &Path) -> Consensus {
        let settings = RaftSettings {
            heartbeat_ms: 50,
            election_min_ms: 150,
            election_max_ms: 300,
            ..Default::default()
        };
        let node = Consensus::open(1, "127.0.0.1:1".into(), dir, settings, None)
            .await
            .unwrap();
        node.bootstrap(&BTreeMap::new()).await.unwrap();
        node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
        node
    }

    /// The child side: does the work named by `SWITCHYARD_FAILPOINT_CHILD`, then crashes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn child_crashes_in_a_failpoint() {
        let Some((mode, dir)) = child_job() else {
            return;
        };
        let _scenario = fail::FailScenario::setup();
        match mode.as_str() {
            // Five acknowledged entries, then a crash while appending 6..=8.
            "append" => {
                let (_db, mut log) = open_log(&dir);
                log.blocking_append((1..=5).map(|i| blank_ent::<TypeConfig>(1, 1, i)))
                    .await
                    .unwrap();
                crash_in("log_store::append::before_commit");
                let _never = log
                    .blocking_append((6..=8).map(|i| blank_ent::<TypeConfig>(1, 1, i)))
                    .await;
            }
            // A crash during the very first append of a fresh store.
            "first_append" => {
                let (_db, mut log) = open_log(&dir);
                crash_in("log_store::append::before_commit");
                let _never = log
                    .blocking_append((1..=3).map(|i| blank_ent::<TypeConfig>(1, 1, i)))
                    .await;
            }
            // A single voter acknowledges five writes, then crashes while persisting the sixth's
            // applied state (after its log entry was committed).
            "apply" => {
                let node = single_voter(&dir).await;
                for i in 0..5 {
                    node.write(endpoint(&format!("e{i}"))).await.unwrap();
                }
                crash_in("state_machine::persist::before_commit");
                let _never = node.write(endpoint("e5")).await;
            }
            other => panic!("unknown child mode {other}"),
        }
        panic!("the failpoint did not crash the child");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_between_log_write_and_commit_keeps_every_acknowledged_entry() {
        // Failpoints are process-wide: hold the scenario lock so no other test configures one.
        let _scenario = fail::FailScenario::setup();
        let dir = TempDir::new().unwrap();
        crash_child("append", dir.path());
        let (_db, mut log) = open_log(dir.path());
        let state = log.get_log_state().await.unwrap();
        assert_eq!(
            state.last_log_id.map(|l| l.index()),
            Some(5),
            "the five acknowledged entries and nothing of the crashed append"
        );
        let entries = log.try_get_log_entries(0..100).await.unwrap();
        let indexes: Vec<u64> = entries.iter().map(|e| e.index()).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4, 5]);
        // The store takes new appends where the acknowledged log ends.
        log.blocking_append((6..=7).map(|i| blank_ent::<TypeConfig>(2, 1, i)))
            .await
            .unwrap();
        let entries = log.try_get_log_entries(6..8).await.unwrap();
        assert!(entries.iter().all(|e| e.log_id().leader_id.term == 2));
        assert_eq!(entries.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_leaves_no_partial_entry_in_the_open_store() {
        let dir = TempDir::new().unwrap();
        let (_db, mut log) = open_log(dir.path());
        log.blocking_append((1..=2).map(|i| blank_ent::<TypeConfig>(1, 1, i)))
            .await
            .unwrap();
        let scenario = fail::FailScenario::setup();
        fail::cfg("log_store::append::before_commit", "return(disk full)").unwrap();
        let failed = log
            .blocking_append((3..=4).map(|i| blank_ent::<TypeConfig>(1, 1, i)))
            .await;
        let message = format!("{:?}", failed.err());
        assert!(message.contains("disk full"), "{message}");
        scenario.teardown();
        let entries = log.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(entries.len(), 2, "no entry of the failed append is visible");
        drop(log);
        drop(_db);
        let (_db, mut log) = open_log(dir.path());
        let state: LogState<TypeConfig> = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index()), Some(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_while_persisting_the_applied_state_recovers_from_the_log() {
        // Failpoints are process-wide: hold the scenario lock so no other test configures one.
        let _scenario = fail::FailScenario::setup();
        let dir = TempDir::new().unwrap();
        crash_child("apply", dir.path());
        let node = single_voter(dir.path()).await;
        // The committed log is applied again on restart: the five acknowledged writes are there,
        // and the sixth (committed, never acknowledged) is either wholly there or absent.
        let state = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let state = node.state().await;
                if (0..5).all(|i| state.endpoints.contains_key(&format!("e{i}"))) {
                    return state;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the acknowledged writes after restart");
        if let Some(e5) = state.endpoints.get("e5") {
            assert_eq!(e5.base_url, "http://10.0.0.1:8000/e5/v1");
        }
        // And it takes writes again.
        node.write(endpoint("after")).await.unwrap();
        assert!(node.state().await.endpoints.contains_key("after"));
        // Metrics trail the write by a moment; the applied index catches up with the log.
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let status = node.status();
                if status.applied_index == status.last_log_index {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("everything in the log is applied");
        node.shutdown(Duration::from_secs(5)).await;
    }

    /// Builds stores in which a child first crashed during the very first append.
    struct CrashedBuilder;

    fn storage_error(e: impl std::error::Error + 'static) -> StorageError<TypeConfig> {
        StorageError::read(openraft::errors::ErrorSource::from_error(&e))
    }

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for CrashedBuilder {
        async fn build(
            &self,
        ) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
            let dir = TempDir::new().map_err(storage_error)?;
            crash_child("first_append", dir.path());
            let db = redb::Database::create(dir.path().join("raft.redb")).map_err(storage_error)?;
            let db = Arc::new(db);
            let log = LogStore::open(db.clone()).map_err(storage_error)?;
            let sm = StateMachine::open(db, None).map_err(storage_error)?;
            Ok((dir, log, sm))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openraft_storage_suite_passes_on_a_store_reopened_after_a_crash() {
        // Failpoints are process-wide: hold the scenario lock so no other test configures one.
        let _scenario = fail::FailScenario::setup();
        Suite::test_all(CrashedBuilder).await.unwrap();
    }
}
