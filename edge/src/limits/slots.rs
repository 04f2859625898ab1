//! Concurrency slots this edge holds from the leader, and how many are in use (pure).

use switchyard_proto::v1::LeaseReply;

/// What taking a slot decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotTake {
    /// A held slot is now in use.
    Taken,
    /// Every held slot is busy; ask the leader to hold `want` in total.
    NeedMore {
        /// Slots to hold, counting those in use.
        want: u32,
    },
}

/// Slots held for one concurrency limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slots {
    cap: u32,
    held: u32,
    in_use: u32,
    expires_ms: u64,
}

impl Slots {
    /// Nothing held yet of a `cap`-slot limit.
    pub fn new(cap: u32) -> Self {
        Self {
            cap,
            held: 0,
            in_use: 0,
            expires_ms: 0,
        }
    }

    /// The cluster-wide cap.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Follows a changed cap from the routing table.
    pub fn set_cap(&mut self, cap: u32) {
        self.cap = cap;
    }

    /// Uses a held slot if one is free and the hold is still valid.
    pub fn take(&mut self, now_ms: u64) -> SlotTake {
        if self.in_use < self.held && self.expires_ms > now_ms {
            self.in_use += 1;
            SlotTake::Taken
        } else {
            SlotTake::NeedMore {
                want: self.in_use + 1,
            }
        }
    }

    /// Records what the leader now lets this edge hold.
    pub fn grant(&mut self, reply: LeaseReply, _now_ms: u64) {
        self.held = reply.held;
        self.expires_ms = u64::try_from(reply.expires_ms).unwrap_or(0);
    }

    /// A request finished with its slot.
    pub fn release(&mut self) {
        self.in_use = self.in_use.saturating_sub(1);
    }

    /// How many slots to hold at the next renewal, or `None` when nothing needs saying: slots
    /// in use are always renewed; idle ones are given back so other edges can have them. Slots
    /// being given back stop being usable here at once, before the leader hears of it, so this
    /// edge never uses a slot the leader may already have granted elsewhere.
    pub fn renewal(&mut self, now_ms: u64) -> Option<u32> {
        let idle = self.held > self.in_use;
        let expiring = self.in_use > 0 && self.expires_ms.saturating_sub(now_ms) < 1_500;
        if idle {
            self.held = self.in_use;
        }
        (idle || expiring).then_some(self.in_use)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(held: u32, expires_ms: i64) -> LeaseReply {
        LeaseReply {
            held,
            in_use: held,
            expires_ms,
            ..Default::default()
        }
    }

    #[test]
    fn slots_are_taken_released_renewed_and_given_back() {
        let mut s = Slots::new(4);
        assert_eq!(s.take(0), SlotTake::NeedMore { want: 1 });
        s.grant(reply(1, 3_000), 0);
        assert_eq!(s.take(1), SlotTake::Taken);
        assert_eq!(s.take(2), SlotTake::NeedMore { want: 2 });
        assert_eq!(s.renewal(100), None);
        assert_eq!(
            s.renewal(2_000),
            Some(1),
            "an in-use hold near expiry is renewed"
        );
        s.release();
        assert_eq!(s.renewal(100), Some(0), "an idle slot is given back");
        s.grant(reply(0, 3_000), 100);
        assert_eq!(s.renewal(100), None);
        // An expired hold is not used even if it looked free.
        s.grant(reply(2, 500), 100);
        assert_eq!(s.take(600), SlotTake::NeedMore { want: 1 });
    }
}
