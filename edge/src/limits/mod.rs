//! Cluster-wide limits at the edge: spend leased capacity locally, refill in the background.
//!
//! - [`budget`]: one windowed limit's local slice (pure).
//! - [`slots`]: concurrency slots held from the leader (pure).
//! - [`client`]: the `LeaseService` client that follows the leader.
//! - [`admission`]: a client key's limits for one request.
//! - [`upstream`]: an upstream deployment's limits, and settling token reservations.
//! - [`spend`]: a client key's money budgets per day and month.
//!
//! Steady-state admission is a map lookup and a subtraction under a short lock; the leader is
//! asked only when a slice runs low (in the background) or is empty (then the request waits for
//! one round trip). With no leader reachable, each edge spends only its even share of the
//! window, so traffic keeps flowing and the edges together stay near the limit.

pub mod admission;
pub mod budget;
pub mod client;
pub mod slots;
pub mod spend;
pub mod upstream;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use budget::{Budget, Grant, Take};
use client::LeaseClient;
use slots::{SlotTake, Slots};

/// Ask for enough to last this long at the current rate.
const REFILL_HORIZON: Duration = Duration::from_secs(2);
/// How long concurrency slots are held without renewal.
const SLOT_TTL: Duration = Duration::from_secs(3);
/// How often held slots are renewed (and slots no longer needed given back).
const SLOT_RENEW: Duration = Duration::from_millis(250);
/// After a lease call failed, requests spend the edge's share without calling for this long.
const RETRY_LEADER_MS: u64 = 250;

/// One windowed limit as the routing table states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLimit {
    /// Ledger key, e.g. `key:<id>:rpm`.
    pub key: String,
    /// Units per window.
    pub limit: u64,
    /// Window length.
    pub window: Duration,
}

impl WindowLimit {
    /// `limit` requests or tokens per minute under `key`.
    pub fn per_minute(key: String, limit: u64) -> Self {
        Self {
            key,
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// `limit` per day under `key`.
    pub fn per_day(key: String, limit: u64) -> Self {
        Self {
            key,
            limit,
            window: Duration::from_secs(86_400),
        }
    }

    fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A request refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// Which limit.
    pub key: String,
    /// When to try again.
    pub retry_after: Duration,
}

/// What a limit looked like after admission, for `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Units per window.
    pub limit: u64,
    /// Units left in the window, cluster-wide estimate.
    pub remaining: u64,
    /// Time until the window resets.
    pub reset: Duration,
}

/// The edge's limiter: leased budgets and slots, shared by all requests.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    client: LeaseClient,
    budgets: Mutex<HashMap<String, Budget>>,
    refilling: Mutex<HashSet<String>>,
    /// Per limit: one lease call at a time. Holds when the last call failed (ms since the
    /// epoch), 0 when it was answered.
    gates: Mutex<HashMap<String, Gate>>,
    slots: Mutex<HashMap<String, Slots>>,
    /// Slots admitted locally while no control plane answered, per key.
    local_slots: Mutex<HashMap<String, u32>>,
    /// Slot requests go one at a time, so replies apply in the order the leader applied them.
    slot_calls: tokio::sync::Mutex<()>,
    renewing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter leasing from the control plane at `control_plane` as `edge_name`. Needs no
    /// runtime until first used.
    pub fn new(control_plane: String, edge_name: String) -> Self {
        Self::with_tls(control_plane, edge_name, None)
    }

    /// As [`Limiter::new`], leasing over mutual TLS with `tls` when given.
    pub fn with_tls(
        control_plane: String,
        edge_name: String,
        tls: Option<switchyard_proto::tls::TlsFiles>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: LeaseClient::with_tls(control_plane, edge_name, tls),
                budgets: Mutex::new(HashMap::new()),
                refilling: Mutex::new(HashSet::new()),
                gates: Mutex::new(HashMap::new()),
                slots: Mutex::new(HashMap::new()),
                local_slots: Mutex::new(HashMap::new()),
                slot_calls: tokio::sync::Mutex::new(()),
                renewing: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Starts renewing held slots on the current runtime, once.
    fn start_renewing(&self) {
        if self
            .inner
            .renewing
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SLOT_RENEW);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Limiter { inner }.renew_slots().await;
            }
        });
    }

    /// Takes `cost` units of `limit`, waiting for one lease round trip when the local slice is
    /// empty.
    pub async fn admit(&self, limit: &WindowLimit, cost: u64) -> Result<Quota, Limited> {
        for _ in 0..3 {
            let now = now_ms();
            // One lock for the common case: take, decide on a refill, read the headers.
            let (take, refill, quota) = self.budget(limit, |b| {
                let take = b.take(cost, now);
                let refill = take == Take::Admitted && b.wants_refill();
                (take, refill, quota_of(b, now))
            });
            match take {
                Take::Admitted => {
                    if refill {
                        self.refill_in_background(limit.clone());
                    }
                    return Ok(quota);
                }
                Take::Exhausted { retry_at_ms } => return Err(limited(limit, retry_at_ms, now)),
                Take::NeedLease => {
                    // One lease call at a time per limit: requests that find the slice empty
                    // together wait for one grant (sized for two seconds of traffic) instead of
                    // each asking the leader.
                    let gate = self.gate(&limit.key);
                    let mut failed_at = gate.lock().await;
                    let now = now_ms();
                    match self.budget(limit, |b| b.take(cost, now)) {
                        Take::Admitted => return Ok(self.quota(limit, now)),
                        Take::Exhausted { retry_at_ms } => {
                            return Err(limited(limit, retry_at_ms, now));
                        }
                        Take::NeedLease => {}
                    }
                    let answered = if recently(*failed_at, now) {
                        None
                    } else {
                        let answered = self.refill(limit, cost, Some(cost)).await;
                        *failed_at = if answered.is_some() { 0 } else { now_ms() };
                        answered
                    };
                    drop(failed_at);
                    let Some(taken) = answered else {
                        // No leader: spend this edge's share of the window.
                        let take = self.budget(limit, |b| b.take_unleased(cost, now));
                        return match take {
                            Take::Admitted => Ok(self.quota(limit, now)),
                            Take::Exhausted { retry_at_ms } => {
                                Err(limited(limit, retry_at_ms, now))
                            }
                            Take::NeedLease => Err(limited(limit, now + 1_000, now)),
                        };
                    };
                    if taken {
                        return Ok(self.quota(limit, now_ms()));
                    }
                }
            }
        }
        // Grants kept arriving too small for `cost`; tell the client to come back shortly.
        Err(Limited {
            key: limit.key.clone(),
            retry_after: Duration::from_secs(1),
        })
    }

    /// Corrects a token reservation with the real usage.
    pub fn settle(&self, limit: &WindowLimit, reserved: u64, actual: u64) {
        let now = now_ms();
        self.budget(limit, |b| b.settle(reserved, actual, now));
    }

    /// The current quota of `limit` without spending.
    pub fn quota(&self, limit: &WindowLimit, now: u64) -> Quota {
        self.budget(limit, |b| quota_of(b, now))
    }

    /// Holds one of `cap` concurrency slots of `key` until the guard drops.
    ///
    /// Slots come from the leader, so the cap holds across edges. With no leader reachable the
    /// edge enforces the cap on its own traffic: requests keep flowing through an outage, and
    /// the cluster-wide bound returns with the leader.
    pub async fn acquire_slot(&self, key: &str, cap: u32) -> Result<SlotGuard, Limited> {
        self.start_renewing();
        let now = now_ms();
        let busy = || Limited {
            key: key.to_string(),
            retry_after: Duration::from_secs(1),
        };
        if let SlotTake::Taken = self.slots_of(key, cap, |s| s.take(now)) {
            return Ok(self.guard(key, false));
        }
        let _one_at_a_time = self.inner.slot_calls.lock().await;
        // Ask for what is in use now (plus this one), not what it was before the lock.
        let want = match self.slots_of(key, cap, |s| s.take(now)) {
            SlotTake::Taken => return Ok(self.guard(key, false)),
            SlotTake::NeedMore { want } => want,
        };
        match self.inner.client.hold_slots(key, want, cap, SLOT_TTL).await {
            Ok(grant) => {
                let taken = self.slots_of(key, cap, |s| {
                    s.grant(grant, now);
                    s.take(now)
                });
                match taken {
                    SlotTake::Taken => Ok(self.guard(key, false)),
                    SlotTake::NeedMore { .. } => Err(busy()),
                }
            }
            // A slow answer may still have been granted: refuse rather than risk the cap.
            Err(e) if !e.unreachable() => {
                tracing::warn!(limit = %key, error = %e, "concurrency slot lease failed");
                Err(busy())
            }
            Err(e) => {
                tracing::warn!(limit = %key, error = %e, "no control plane reachable; enforcing the concurrency cap on this edge");
                let mut local = lock(&self.inner.local_slots);
                let in_use = local.entry(key.to_string()).or_default();
                if *in_use >= cap {
                    return Err(busy());
                }
                *in_use += 1;
                drop(local);
                Ok(self.guard(key, true))
            }
        }
    }

    fn guard(&self, key: &str, local: bool) -> SlotGuard {
        SlotGuard {
            limiter: self.clone(),
            key: key.to_string(),
            local,
        }
    }

    fn release_slot(&self, key: &str, local: bool) {
        if local {
            if let Some(in_use) = lock(&self.inner.local_slots).get_mut(key) {
                *in_use = in_use.saturating_sub(1);
            }
        } else if let Some(slots) = lock(&self.inner.slots).get_mut(key) {
            slots.release();
        }
    }

    async fn renew_slots(&self) {
        let _one_at_a_time = self.inner.slot_calls.lock().await;
        let now = now_ms();
        let due: Vec<(String, u32, u32)> = lock(&self.inner.slots)
            .iter_mut()
            .filter_map(|(key, s)| s.renewal(now).map(|want| (key.clone(), want, s.cap())))
            .collect();
        for (key, want, cap) in due {
            match self
                .inner
                .client
                .hold_slots(&key, want, cap, SLOT_TTL)
                .await
            {
                Ok(grant) => {
                    if let Some(slots) = lock(&self.inner.slots).get_mut(&key) {
                        slots.grant(grant, now);
                    }
                }
                Err(e) => tracing::debug!(limit = %key, error = %e, "slot renewal failed"),
            }
        }
    }

    /// Asks the leader for more of `limit`; `None` when no leader answered. With `take`, that
    /// many units are taken from the slice as the grant is added, under one lock, so requests
    /// running at the same time cannot spend a grant before the request that asked for it;
    /// the answer says whether they were.
    async fn refill(&self, limit: &WindowLimit, at_least: u64, take: Option<u64>) -> Option<bool> {
        let now = now_ms();
        let horizon = u64::try_from(REFILL_HORIZON.as_millis()).unwrap_or(u64::MAX);
        let want = self.budget(limit, |b| b.ask(now, horizon, at_least));
        match self
            .inner
            .client
            .window(&limit.key, want, limit.limit, limit.window_ms())
            .await
        {
            Ok(grant) => Some(self.budget(limit, |b| {
                let now = now_ms();
                b.add(grant, now);
                take.is_some_and(|cost| b.take(cost, now) == Take::Admitted)
            })),
            Err(e) => {
                tracing::warn!(limit = %limit.key, error = %e, "cannot lease capacity; spending this edge's share");
                None
            }
        }
    }

    fn refill_in_background(&self, limit: WindowLimit) {
        if !lock(&self.inner.refilling).insert(limit.key.clone()) {
            return;
        }
        let limiter = self.clone();
        tokio::spawn(async move {
            let gate = limiter.gate(&limit.key);
            let mut failed_at = gate.lock().await;
            // A request ahead in line may have refilled already, or the leader just failed.
            let due = limiter.budget(&limit, |b| b.wants_refill());
            if due && !recently(*failed_at, now_ms()) {
                let answered = limiter.refill(&limit, 1, None).await;
                *failed_at = if answered.is_some() { 0 } else { now_ms() };
            }
            drop(failed_at);
            lock(&limiter.inner.refilling).remove(&limit.key);
        });
    }

    fn gate(&self, key: &str) -> Gate {
        let mut gates = lock(&self.inner.gates);
        if let Some(gate) = gates.get(key) {
            return Arc::clone(gate);
        }
        Arc::clone(gates.entry(key.to_string()).or_default())
    }

    fn budget<T>(&self, limit: &WindowLimit, f: impl FnOnce(&mut Budget) -> T) -> T {
        let mut budgets = lock(&self.inner.budgets);
        // Look up before inserting, so the hot path does not allocate the key.
        if let Some(budget) = budgets.get_mut(&limit.key) {
            if budget.limit() != limit.limit {
                budget.set_limit(limit.limit);
            }
            return f(budget);
        }
        let budget = budgets
            .entry(limit.key.clone())
            .or_insert_with(|| Budget::new(limit.limit, limit.window_ms()));
        f(budget)
    }

    fn slots_of<T>(&self, key: &str, cap: u32, f: impl FnOnce(&mut Slots) -> T) -> T {
        let mut slots = lock(&self.inner.slots);
        let entry = slots
            .entry(key.to_string())
            .or_insert_with(|| Slots::new(cap));
        entry.set_cap(cap);
        f(entry)
    }
}

/// One concurrency slot, released on drop.
pub struct SlotGuard {
    limiter: Limiter,
    key: String,
    /// Admitted by the edge alone while no leader answered.
    local: bool,
}

impl std::fmt::Debug for SlotGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotGuard").field("key", &self.key).finish()
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.limiter.release_slot(&self.key, self.local);
    }
}

/// One limit's lease-call gate: the time its last call failed, 0 when it was answered.
type Gate = Arc<tokio::sync::Mutex<u64>>;

/// Whether a call that failed at `failed_at` is recent enough to not call again at `now`.
fn recently(failed_at: u64, now: u64) -> bool {
    failed_at != 0 && now.saturating_sub(failed_at) < RETRY_LEADER_MS
}

fn quota_of(b: &Budget, now: u64) -> Quota {
    let (limit, remaining, reset_ms) = b.headers(now);
    Quota {
        limit,
        remaining,
        reset: Duration::from_millis(reset_ms),
    }
}

fn limited(limit: &WindowLimit, retry_at_ms: u64, now: u64) -> Limited {
    Limited {
        key: limit.key.clone(),
        retry_after: Duration::from_millis(retry_at_ms.saturating_sub(now).max(1)),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters behind; they are still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Milliseconds since the Unix epoch; windows are aligned to wall-clock time on every edge.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl From<switchyard_proto::v1::LeaseReply> for Grant {
    fn from(reply: switchyard_proto::v1::LeaseReply) -> Self {
        Grant {
            amount: reply.amount,
            window_start_ms: u64::try_from(reply.window_start_ms).unwrap_or(0),
            window_end_ms: u64::try_from(reply.window_end_ms).unwrap_or(0),
            remaining: reply.remaining,
            edges: reply.edges,
        }
    }
}
