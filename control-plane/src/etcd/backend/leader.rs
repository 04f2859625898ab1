//! Leadership and upkeep: holding (or watching for) the leader key, reading etcd's status and
//! members, and compacting the log behind snapshots on the leader.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, DeleteOptions, PutOptions, Txn, TxnOp};

use super::{HeldLease, Holder, Inner, OBSERVE_EVERY, Snapshot, got_kv, lock};
use crate::error::Error;
use crate::raft::Member;
use crate::service::agent::now_ms;

impl Inner {
    /// Holds (or watches for) the leader key until stopped.
    pub(super) async fn campaign(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let tick = Duration::from_millis(self.settings.leader_ttl_s * 1000 / 3);
        let mut lease: Option<HeldLease> = None;
        loop {
            if let Err(e) = self.campaign_once(&mut lease).await {
                let was_leader = self.leader.borrow().as_ref() == Some(&self.me);
                if was_leader {
                    tracing::warn!(error = %e, "lost contact with etcd; no longer the leader");
                    self.leader.send_replace(None);
                } else {
                    tracing::debug!(error = %e, "cannot campaign for the leader key");
                }
                lease = None;
                *lock(&self.lease) = None;
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn campaign_once(&self, lease: &mut Option<HeldLease>) -> Result<(), Error> {
        let mut client = self.client.clone();
        let held = match lease {
            Some(held) => held,
            None => {
                let ttl = i64::try_from(self.settings.leader_ttl_s).unwrap_or(i64::MAX);
                let granted = self
                    .timed("granting a lease", client.lease_grant(ttl, None))
                    .await?;
                let (keeper, stream) = self
                    .timed(
                        "keeping a lease alive",
                        client.lease_keep_alive(granted.id()),
                    )
                    .await?;
                *lock(&self.lease) = Some(granted.id());
                lease.insert(HeldLease {
                    id: granted.id(),
                    keeper,
                    stream,
                })
            }
        };
        self.timed("renewing the lease", held.keeper.keep_alive())
            .await?;
        match self
            .timed("renewing the lease", held.stream.message())
            .await?
        {
            Some(r) if r.ttl() > 0 => {}
            _ => return Err(Error::Etcd("the leader lease expired".into())),
        }
        let me = serde_json::to_vec(&self.me)
            .map_err(|e| Error::Etcd(format!("cannot encode the leader key: {e}")))?;
        let key = self.keys.leader();
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                me,
                Some(PutOptions::new().with_lease(held.id)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .timed("campaigning for the leader key", client.txn(txn))
            .await?;
        let holder = if response.succeeded() {
            tracing::info!(node_id = self.me.node_id, "took the leader key in etcd");
            Some(self.me.clone())
        } else {
            got_kv(&response).and_then(|(lease_id, value)| {
                if lease_id == held.id {
                    Some(self.me.clone())
                } else {
                    serde_json::from_slice::<Holder>(&value).ok()
                }
            })
        };
        self.leader
            .send_if_modified(|old| std::mem::replace(old, holder.clone()) != holder);
        Ok(())
    }

    /// Reads etcd's status and members and, on the leader, compacts the log when due.
    pub(super) async fn observe_loop(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        loop {
            tokio::select! {
                () = tokio::time::sleep(OBSERVE_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.observe().await;
            if self.leader.borrow().as_ref() == Some(&self.me)
                && let Err(e) = self.snapshot(false).await
            {
                tracing::warn!(error = %e, "cannot write a snapshot to etcd");
            }
        }
    }

    pub(super) async fn observe(&self) {
        let mut client = self.client.clone();
        if let Ok(status) = self.timed("reading etcd's status", client.status()).await {
            let revision = status.header().map_or(0, |h| h.revision());
            let mut observed = lock(&self.observed);
            observed.status.version = status.version().to_string();
            observed.status.raft_term = status.raft_term();
            observed.status.etcd_leader = status.leader();
            observed.status.revision = observed.status.revision.max(revision);
        }
        if let Ok(list) = self
            .timed("listing etcd members", client.member_list())
            .await
        {
            let members = list
                .members()
                .iter()
                .map(|m| Member {
                    id: m.id(),
                    addr: m.client_urls().first().cloned().unwrap_or_default(),
                    voter: !m.is_learner(),
                })
                .collect();
            lock(&self.observed).members = members;
        }
    }

    /// Writes a snapshot when `snapshot_every` commands were applied since the last one (or
    /// whenever there is something new, when `force`d) and deletes the log it covers, in one
    /// transaction guarded against a concurrent snapshot. Answers whether it wrote one.
    pub(super) async fn snapshot(&self, force: bool) -> Result<bool, Error> {
        let (seq, state) = {
            let applied = self.applied.lock().await;
            (applied.seq, applied.state.clone())
        };
        let known = lock(&self.observed).status.snapshot_seq;
        let due = seq > known && (force || seq - known >= self.settings.snapshot_every);
        if !due {
            return Ok(false);
        }
        let mut kv = self.client.kv_client();
        let key = self.keys.snapshot();
        let current = self
            .timed("reading the snapshot", kv.get(key.clone(), None))
            .await?;
        let (guard, current_seq) = match current.kvs().first() {
            Some(stored) => (
                Compare::mod_revision(key.clone(), CompareOp::Equal, stored.mod_revision()),
                serde_json::from_slice::<Snapshot>(stored.value()).map_or(0, |s| s.seq),
            ),
            None => (Compare::version(key.clone(), CompareOp::Equal, 0), 0),
        };
        if current_seq >= seq {
            lock(&self.observed).status.snapshot_seq = current_seq;
            return Ok(false);
        }
        let at_ms = now_ms();
        let body = serde_json::to_vec(&Snapshot { seq, state, at_ms })
            .map_err(|e| Error::Etcd(format!("cannot encode the snapshot: {e}")))?;
        let txn = Txn::new().when([guard]).and_then([
            TxnOp::put(key, body, None),
            TxnOp::delete(
                self.keys.log(0),
                Some(DeleteOptions::new().with_range(self.keys.log(seq + 1))),
            ),
        ]);
        let response = self.timed("writing the snapshot", kv.txn(txn)).await?;
        if response.succeeded() {
            let mut observed = lock(&self.observed);
            observed.status.snapshot_seq = seq;
            observed.snapshot_at_ms = at_ms;
            tracing::info!(
                seq,
                "wrote a snapshot to etcd and deleted the log behind it"
            );
        }
        Ok(response.succeeded())
    }
}
