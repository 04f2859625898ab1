//! An edge's local share of one cluster-wide windowed limit: spend without asking anyone.
//!
//! Pure: the caller passes the time. The leader grants slices (see the control plane's lease
//! book); this spends them, says when to ask for more, and how much to ask for, from the rate
//! this edge has been spending at.

/// What admission decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Admitted; `cost` units were taken from the local slice.
    Admitted,
    /// The local slice cannot pay; ask the leader for more, then try again.
    NeedLease,
    /// The window is spent cluster-wide; capacity returns at `retry_at_ms`.
    Exhausted {
        /// When the next window starts, ms since the Unix epoch.
        retry_at_ms: u64,
    },
}

/// A slice the leader granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Units granted.
    pub amount: u64,
    /// Window the slice belongs to.
    pub window_start_ms: u64,
    /// End of that window.
    pub window_end_ms: u64,
    /// Units left ungranted cluster-wide after this grant.
    pub remaining: u64,
    /// Edges holding slices of this window.
    pub edges: u32,
}

/// This edge's slice of one limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    limit: u64,
    window_ms: u64,
    window_start_ms: u64,
    /// Units held and not yet spent; negative after a token settlement overran the estimate.
    available: i64,
    /// Units spent by this edge in the current window.
    spent: u64,
    /// Ungranted units cluster-wide at the last grant.
    cluster_remaining: u64,
    /// Size of the last grant, for the refill threshold.
    last_grant: u64,
    /// Edges sharing the window at the last grant; sizes the share used without a leader.
    edges: u32,
    /// Since when this edge has been spending in the current window: the window's start, or
    /// the first request when the budget is new (so a mid-window start does not read as a
    /// low rate).
    active_since_ms: u64,
    /// The previous window's spending (units, and ms it was active), so the first asks of a
    /// new window are sized by the rate this edge had, not by the few requests seen so far.
    previous: (u64, u64),
}

impl Budget {
    /// A budget for `limit` units per `window_ms`, holding nothing yet.
    pub fn new(limit: u64, window_ms: u64) -> Self {
        Self {
            limit,
            window_ms: window_ms.max(1),
            window_start_ms: 0,
            available: 0,
            spent: 0,
            cluster_remaining: limit,
            last_grant: 0,
            edges: 1,
            active_since_ms: 0,
            previous: (0, 0),
        }
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Follows a changed limit from the routing table.
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    fn roll(&mut self, now_ms: u64) {
        let start = now_ms - now_ms % self.window_ms;
        if start != self.window_start_ms {
            // Slices belong to their window: what is left of the old one is gone.
            let old_end = self.window_start_ms + self.window_ms;
            self.previous = if old_end == start {
                let since = self.window_start_ms.max(self.active_since_ms);
                (self.spent, old_end.saturating_sub(since))
            } else {
                (0, 0)
            };
            self.active_since_ms = if self.window_start_ms == 0 {
                now_ms
            } else {
                start
            };
            self.window_start_ms = start;
            self.available = 0;
            self.spent = 0;
            self.cluster_remaining = self.limit;
            self.last_grant = 0;
        }
    }

    /// Takes `cost` units for a request at `now_ms`.
    pub fn take(&mut self, cost: u64, now_ms: u64) -> Take {
        self.roll(now_ms);
        let cost_i = i64::try_from(cost).unwrap_or(i64::MAX);
        if self.available >= cost_i {
            self.available -= cost_i;
            self.spent += cost;
            return Take::Admitted;
        }
        if self.cluster_remaining == 0 {
            return Take::Exhausted {
                retry_at_ms: self.window_start_ms + self.window_ms,
            };
        }
        Take::NeedLease
    }

    /// Adds a grant. Grants for another window than the current one are dropped.
    pub fn add(&mut self, grant: Grant, now_ms: u64) {
        self.roll(now_ms);
        if grant.window_start_ms != self.window_start_ms {
            return;
        }
        self.available += i64::try_from(grant.amount).unwrap_or(i64::MAX);
        self.cluster_remaining = grant.remaining;
        self.last_grant = grant.amount;
        self.edges = grant.edges.max(1);
    }

    /// Admits without a lease while no leader answers: this edge's even share of the window,
    /// counting what it already spent, so a control-plane outage neither stops traffic nor lets
    /// the edges together exceed the limit by more than their shares' rounding.
    pub fn take_unleased(&mut self, cost: u64, now_ms: u64) -> Take {
        self.roll(now_ms);
        let share = self.limit / u64::from(self.edges);
        if self.spent + cost <= share {
            self.spent += cost;
            Take::Admitted
        } else {
            Take::Exhausted {
                retry_at_ms: self.window_start_ms + self.window_ms,
            }
        }
    }

    /// Corrects a reservation once the real cost is known (tokens): refunds or charges the
    /// difference locally. Under a lease the difference goes to (or comes from) the held slice;
    /// without one (no grant yet this window: no leader answered) it only corrects what this
    /// edge counts against its share. A reservation from an earlier window is left alone.
    pub fn settle(&mut self, reserved: u64, actual: u64, now_ms: u64) {
        let start = now_ms - now_ms % self.window_ms;
        if start != self.window_start_ms {
            return;
        }
        let delta =
            i64::try_from(reserved).unwrap_or(i64::MAX) - i64::try_from(actual).unwrap_or(i64::MAX);
        if self.last_grant > 0 {
            self.available += delta;
        }
        self.spent = self.spent.saturating_add_signed(-delta);
    }

    /// Whether to ask for more in the background now: the slice is running low and the cluster
    /// still has capacity.
    pub fn wants_refill(&self) -> bool {
        self.cluster_remaining > 0
            && self.available <= i64::try_from(self.last_grant / 4).unwrap_or(i64::MAX)
    }

    /// How much to ask for: what this edge spends in `horizon_ms` at its current rate, at
    /// least `min`, plus what a settlement left it owing (real usage above the estimate).
    pub fn ask(&self, now_ms: u64, horizon_ms: u64, min: u64) -> u64 {
        let since = self.window_start_ms.max(self.active_since_ms);
        let elapsed = now_ms.saturating_sub(since).max(1);
        let mut rate_per_ms = self.spent as f64 / elapsed as f64;
        let (prev_spent, prev_ms) = self.previous;
        if elapsed < horizon_ms && prev_ms > 0 {
            rate_per_ms = rate_per_ms.max(prev_spent as f64 / prev_ms as f64);
        }
        let want = (rate_per_ms * horizon_ms as f64).ceil() as u64;
        let debt = u64::try_from(-self.available.min(0)).unwrap_or(0);
        want.max(min).max(1).saturating_add(debt)
    }

    /// OpenAI-style header values: (limit, remaining cluster-wide estimate, ms until reset).
    pub fn headers(&self, now_ms: u64) -> (u64, u64, u64) {
        let held = u64::try_from(self.available.max(0)).unwrap_or(0);
        let reset = (self.window_start_ms + self.window_ms).saturating_sub(now_ms);
        (
            self.limit,
            self.cluster_remaining.saturating_add(held).min(self.limit),
            reset,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(amount: u64, remaining: u64, start: u64) -> Grant {
        Grant {
            amount,
            window_start_ms: start,
            window_end_ms: start + 60_000,
            remaining,
            edges: 1,
        }
    }

    #[test]
    fn spends_a_grant_then_asks_then_reports_exhaustion() {
        let mut b = Budget::new(10, 60_000);
        assert_eq!(b.take(1, 1_000), Take::NeedLease);
        b.add(grant(3, 7, 0), 1_000);
        assert_eq!(b.take(1, 1_001), Take::Admitted);
        assert_eq!(b.take(2, 1_002), Take::Admitted);
        assert_eq!(b.take(1, 1_003), Take::NeedLease);
        b.add(grant(0, 0, 0), 1_004);
        assert_eq!(
            b.take(1, 1_005),
            Take::Exhausted {
                retry_at_ms: 60_000
            }
        );
        // The next window starts fresh.
        assert_eq!(b.take(1, 60_000), Take::NeedLease);
    }

    #[test]
    fn without_a_leader_an_edge_spends_only_its_share() {
        let mut b = Budget::new(30, 60_000);
        b.add(
            Grant {
                edges: 3,
                ..grant(2, 20, 0)
            },
            10,
        );
        assert_eq!(b.take(2, 11), Take::Admitted);
        for t in 0..8 {
            assert_eq!(b.take_unleased(1, 20 + t), Take::Admitted);
        }
        assert_eq!(
            b.take_unleased(1, 30),
            Take::Exhausted {
                retry_at_ms: 60_000
            }
        );
    }

    #[test]
    fn grants_for_another_window_are_dropped() {
        let mut b = Budget::new(10, 60_000);
        b.add(grant(5, 5, 0), 60_001);
        assert_eq!(b.take(1, 60_002), Take::NeedLease);
    }

    #[test]
    fn settlement_refunds_and_charges() {
        let mut b = Budget::new(1_000, 60_000);
        b.add(grant(500, 500, 0), 10);
        assert_eq!(b.take(400, 20), Take::Admitted);
        b.settle(400, 100, 30); // used less: 300 back
        assert_eq!(b.take(400, 40), Take::Admitted);
        b.settle(400, 700, 50); // used more: owes 300
        assert_eq!(b.take(1, 60), Take::NeedLease);
        assert!(b.wants_refill());
        // The next ask covers the debt as well as the request.
        let want = b.ask(60, 0, 5);
        assert_eq!(want, 5 + 300);
    }

    #[test]
    fn settlement_without_a_lease_corrects_only_the_share() {
        let mut b = Budget::new(100, 60_000);
        assert_eq!(b.take_unleased(90, 10), Take::Admitted);
        assert!(matches!(b.take_unleased(20, 20), Take::Exhausted { .. }));
        b.settle(90, 5, 30);
        assert_eq!(b.take_unleased(20, 40), Take::Admitted);
        assert_eq!(
            b.take(1, 50),
            Take::NeedLease,
            "no units appear from nothing"
        );
        // A reservation from the previous window does not touch this one.
        b.settle(20, 0, 60_001);
        assert_eq!(b.take_unleased(100, 60_002), Take::Admitted);
        b.settle(100, 0, 60_003);
        assert_eq!(b.take_unleased(100, 60_004), Take::Admitted);
    }

    #[test]
    fn asks_for_its_rate_over_the_horizon() {
        let mut b = Budget::new(100_000, 60_000);
        b.add(grant(1_000, 99_000, 0), 0);
        for t in 0..100 {
            assert_eq!(b.take(1, t * 100), Take::Admitted);
        }
        // 100 units in ~10 s = 10/s: two seconds ahead is ~20.
        let want = b.ask(10_000, 2_000, 1);
        assert!((19..=21).contains(&want), "{want}");
        assert_eq!(b.headers(10_000), (100_000, 99_900, 50_000));
    }

    #[test]
    fn a_budget_new_mid_window_measures_its_rate_from_its_first_request() {
        let mut b = Budget::new(100_000, 60_000);
        assert_eq!(b.take(1, 630_000), Take::NeedLease);
        b.add(grant(1_000, 99_000, 600_000), 630_000);
        for t in 0..100 {
            assert_eq!(b.take(1, 630_000 + t * 100), Take::Admitted);
        }
        // 100 in the 10 s since it started (not in the 40 s since the window did).
        let want = b.ask(640_000, 2_000, 1);
        assert!((19..=21).contains(&want), "{want}");
        // The next window counts from its start.
        assert_eq!(b.take(1, 660_000), Take::NeedLease);
        b.add(grant(1_000, 99_000, 660_000), 660_000);
        for t in 0..50 {
            assert_eq!(b.take(1, 660_000 + t * 200), Take::Admitted);
        }
        let want = b.ask(670_000, 2_000, 1);
        assert!((10..=11).contains(&want), "{want}");
        // Early in the next window, the last window's rate sizes the ask (50 in 60 s here).
        assert_eq!(b.take(1, 720_000), Take::NeedLease);
        let want = b.ask(720_010, 2_000, 1);
        assert!((2..=3).contains(&want), "{want}");
    }
}
