//! The etcd key layout of the command log and the rule for taking log entries in order (pure).

/// Every key Switchyard uses under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// What a follower does with a log entry, given the last sequence it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Already applied (a replay overlapping a watch); ignore it.
    Skip,
    /// The next entry: apply it.
    Apply,
    /// Entries are missing before it (compacted away): reload the snapshot first.
    Gap,
}

impl Keys {
    /// Keys under `prefix` (no trailing `/`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// Where the log entries live; every entry key starts with it.
    pub fn log_prefix(&self) -> String {
        format!("{}/log/", self.prefix)
    }

    /// The key of log entry `seq`; zero-padded so key order is sequence order.
    pub fn log(&self, seq: u64) -> String {
        format!("{}/log/{seq:020}", self.prefix)
    }

    /// The end of the log's key range (exclusive): `/` + 1 is `0`.
    pub fn log_end(&self) -> String {
        format!("{}/log0", self.prefix)
    }

    /// The counter holding the next sequence number.
    pub fn next(&self) -> String {
        format!("{}/log-next", self.prefix)
    }

    /// The snapshot of the state and the sequence it covers.
    pub fn snapshot(&self) -> String {
        format!("{}/snapshot", self.prefix)
    }

    /// The leader key, held under an etcd lease.
    pub fn leader(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    /// The sequence number of a log entry's key; `None` for anything else.
    pub fn seq_of(&self, key: &[u8]) -> Option<u64> {
        let key = std::str::from_utf8(key).ok()?;
        let digits = key.strip_prefix(&self.log_prefix())?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// Decides what to do with entry `seq` after applying up to `applied`.
pub fn step(applied: u64, seq: u64) -> Step {
    if seq <= applied {
        Step::Skip
    } else if seq == applied + 1 {
        Step::Apply
    } else {
        Step::Gap
    }
}

/// Parses the counter's value; a missing counter means the log is empty (next is 1).
pub fn parse_next(value: Option<&[u8]>) -> Option<u64> {
    match value {
        None => Some(1),
        Some(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_in_sequence_order_and_parse_back() {
        let k = Keys::new("/sy/");
        assert_eq!(k.log(7), "/sy/log/00000000000000000007");
        assert!(k.log(9) < k.log(10));
        assert!(k.log(u64::MAX) < k.log_end());
        assert!(k.log(0).starts_with(&k.log_prefix()));
        let cases: Vec<(&str, Option<u64>)> = vec![
            ("/sy/log/00000000000000000042", Some(42)),
            ("/sy/log/42", None),
            ("/sy/log-next", None),
            ("/sy/snapshot", None),
            ("/other/log/00000000000000000042", None),
            ("/sy/log/0000000000000000004x", None),
        ];
        for (key, want) in cases {
            assert_eq!(k.seq_of(key.as_bytes()), want, "{key}");
        }
    }

    #[test]
    fn entries_are_taken_strictly_in_order() {
        let cases = [
            (0, 1, Step::Apply),
            (5, 3, Step::Skip),
            (5, 5, Step::Skip),
            (5, 6, Step::Apply),
            (5, 8, Step::Gap),
        ];
        for (applied, seq, want) in cases {
            assert_eq!(step(applied, seq), want, "applied {applied}, seq {seq}");
        }
    }

    #[test]
    fn the_counter_starts_at_one() {
        assert_eq!(parse_next(None), Some(1));
        assert_eq!(parse_next(Some(b"17")), Some(17));
        assert_eq!(parse_next(Some(b"x")), None);
    }
}
