//! Capacity leases: how one cluster-wide limit is split among edges without a per-request hop.
//!
//! Each limit (a client key's requests per minute, an upstream deployment's tokens per minute,
//! …) has a window. Edges ask the leader for a slice of the window's capacity and spend it
//! locally; the ledger here records every slice granted, so the sum of slices never exceeds the
//! limit. Grants are raft commands, so a new leader knows exactly what the old one handed out and
//! a leader change costs no slack. Concurrency limits are slots held with an expiry that edges
//! renew; a dead edge's slots come back when its hold expires.
//!
//! Pure: time arrives in the request (`at_ms`), like every other state change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long an idle ledger is kept after its window ended, in windows.
const KEEP_WINDOWS: u64 = 2;

/// A request for a slice of a windowed limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRequest {
    /// Which limit (`key:<id>:rpm`, `up:<endpoint>/<credential>/<model>:tpm`, …).
    pub limit_key: String,
    /// The edge asking.
    pub edge: String,
    /// Units the edge would like (requests or tokens).
    pub want: u64,
    /// The limit per window, as the edge read it from the routing table.
    pub limit: u64,
    /// Window length in ms (60 000 for per-minute, 86 400 000 for per-day).
    pub window_ms: u64,
    /// Proposal time, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A slice granted from a windowed limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowGrant {
    /// Units granted; may be 0 when the window is spent.
    pub amount: u64,
    /// When the window the grant belongs to started and ends, ms since the Unix epoch.
    pub window_start_ms: u64,
    /// End of that window; capacity is fresh after it.
    pub window_end_ms: u64,
    /// Units still ungranted in the window after this grant, cluster-wide.
    pub remaining: u64,
    /// Edges that hold a slice of this window, the asker included.
    pub edges: u32,
}

/// A request to hold `want` concurrency slots until `at_ms + ttl_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRequest {
    /// Which limit (`key:<id>:concurrency`, …).
    pub limit_key: String,
    /// The edge asking.
    pub edge: String,
    /// Slots the edge wants to hold in total (not in addition); 0 releases them.
    pub want: u32,
    /// Maximum slots cluster-wide.
    pub cap: u32,
    /// How long the hold lasts without renewal, ms.
    pub ttl_ms: u64,
    /// Proposal time, ms since the Unix epoch.
    pub at_ms: u64,
}

/// Slots an edge now holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotGrant {
    /// Slots held by the asker after this request (≤ what it wanted).
    pub held: u32,
    /// Slots held by all edges together.
    pub in_use: u32,
    /// When the hold expires unless renewed, ms since the Unix epoch.
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    start_ms: u64,
    window_ms: u64,
    granted: u64,
    per_edge: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slots {
    /// Edge → (held, expires_ms).
    holders: BTreeMap<String, (u32, u64)>,
}

/// Every limit's current window and slot holders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBook {
    windows: BTreeMap<String, Window>,
    slots: BTreeMap<String, Slots>,
}

impl LeaseBook {
    /// Grants a slice of the current window of `req.limit_key`.
    ///
    /// The slice is at most half of what is left (at least one unit), so one busy edge cannot
    /// take a whole window that others need, and little capacity is stranded at the window's end.
    pub fn grant_window(&mut self, req: &WindowRequest) -> WindowGrant {
        let window_ms = req.window_ms.max(1);
        let start_ms = req.at_ms - req.at_ms % window_ms;
        self.prune(req.at_ms);
        let window = self.windows.entry(req.limit_key.clone()).or_default();
        if window.start_ms != start_ms || window.window_ms != window_ms {
            *window = Window {
                start_ms,
                window_ms,
                ..Window::default()
            };
        }
        let left = req.limit.saturating_sub(window.granted);
        let share = if left == 0 { 0 } else { (left / 2).max(1) };
        let amount = req.want.min(share);
        if amount > 0 {
            window.granted += amount;
            *window.per_edge.entry(req.edge.clone()).or_default() += amount;
        }
        let edges = window.per_edge.len().max(1);
        WindowGrant {
            amount,
            window_start_ms: start_ms,
            window_end_ms: start_ms + window_ms,
            remaining: req.limit.saturating_sub(window.granted),
            edges: u32::try_from(edges).unwrap_or(u32::MAX),
        }
    }

    /// Sets how many concurrency slots `req.edge` holds, up to what the cap leaves free.
    pub fn hold_slots(&mut self, req: &SlotRequest) -> SlotGrant {
        let slots = self.slots.entry(req.limit_key.clone()).or_default();
        slots.holders.retain(|_, (_, expires)| *expires > req.at_ms);
        let others: u32 = slots
            .holders
            .iter()
            .filter(|(edge, _)| *edge != &req.edge)
            .map(|(_, (held, _))| *held)
            .sum();
        let held = req.want.min(req.cap.saturating_sub(others));
        let expires_ms = req.at_ms + req.ttl_ms;
        if held == 0 {
            slots.holders.remove(&req.edge);
        } else {
            slots.holders.insert(req.edge.clone(), (held, expires_ms));
        }
        let in_use = others + held;
        if slots.holders.is_empty() {
            self.slots.remove(&req.limit_key);
        }
        SlotGrant {
            held,
            in_use,
            expires_ms,
        }
    }

    /// Drops windows that ended long ago, so the book grows with active limits, not time.
    fn prune(&mut self, at_ms: u64) {
        self.windows
            .retain(|_, w| w.start_ms + w.window_ms * (1 + KEEP_WINDOWS) > at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(edge: &str, want: u64, at_ms: u64) -> WindowRequest {
        WindowRequest {
            limit_key: "key:k1:rpm".into(),
            edge: edge.into(),
            want,
            limit: 100,
            window_ms: 60_000,
            at_ms,
        }
    }

    #[test]
    fn grants_never_exceed_the_limit_and_shrink_as_it_fills() {
        // (edge, want) in order → expected amount
        let steps = [
            ("a", 80, 50),
            ("b", 80, 25),
            ("c", 10, 10),
            ("a", 100, 7),
            ("b", 100, 4),
            ("c", 100, 2),
            ("a", 100, 1),
            ("b", 100, 1),
            ("c", 100, 0),
        ];
        let mut book = LeaseBook::default();
        let mut total = 0;
        for (i, (edge, want, expected)) in steps.into_iter().enumerate() {
            let grant = book.grant_window(&ask(edge, want, 61_000 + i as u64));
            assert_eq!(grant.amount, expected, "step {i}");
            total += grant.amount;
            assert_eq!(grant.remaining, 100 - total);
            assert_eq!(
                (grant.window_start_ms, grant.window_end_ms),
                (60_000, 120_000)
            );
        }
        assert_eq!(total, 100);
    }

    #[test]
    fn a_new_window_starts_fresh_and_old_ones_are_pruned() {
        let mut book = LeaseBook::default();
        assert_eq!(book.grant_window(&ask("a", 100, 1_000)).amount, 50);
        assert_eq!(book.grant_window(&ask("a", 100, 59_999)).amount, 25);
        let next = book.grant_window(&ask("a", 100, 60_000));
        assert_eq!((next.amount, next.remaining, next.edges), (50, 50, 1));
        // Far in the future the first window is gone from the book.
        book.grant_window(&WindowRequest {
            limit_key: "other".into(),
            ..ask("a", 1, 10 * 60_000)
        });
        assert_eq!(book.windows.len(), 1);
    }

    #[test]
    fn a_lowered_limit_grants_nothing_more() {
        let mut book = LeaseBook::default();
        book.grant_window(&ask("a", 100, 1_000));
        let lowered = WindowRequest {
            limit: 40,
            ..ask("b", 10, 2_000)
        };
        let grant = book.grant_window(&lowered);
        assert_eq!((grant.amount, grant.remaining, grant.edges), (0, 0, 1));
    }

    fn slots(edge: &str, want: u32, at_ms: u64) -> SlotRequest {
        SlotRequest {
            limit_key: "key:k1:concurrency".into(),
            edge: edge.into(),
            want,
            cap: 4,
            ttl_ms: 1_000,
            at_ms,
        }
    }

    #[test]
    fn slots_never_exceed_the_cap_and_expire() {
        let mut book = LeaseBook::default();
        assert_eq!(book.hold_slots(&slots("a", 3, 0)).held, 3);
        assert_eq!(book.hold_slots(&slots("b", 3, 10)).held, 1);
        let c = book.hold_slots(&slots("c", 1, 20));
        assert_eq!((c.held, c.in_use), (0, 4));
        // a gives two back; c can have them.
        assert_eq!(book.hold_slots(&slots("a", 1, 30)).held, 1);
        assert_eq!(book.hold_slots(&slots("c", 2, 40)).held, 2);
        // b stops renewing; after its hold expires its slot is free.
        assert_eq!(book.hold_slots(&slots("c", 3, 1_011)).held, 3);
        assert_eq!(book.hold_slots(&slots("a", 0, 1_020)).in_use, 3);
    }
}
