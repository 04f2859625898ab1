//! The request log: one JSON object per line and per finished request, with the webhook's
//! fields (see [`Event`]), appended to a file or written to stdout (`-`). Lines are written in
//! batches by the telemetry task, so a line appears at most one flush interval after its request
//! ended; a write error (a full disk) is retried like an unreachable webhook.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use super::event::Event;
use super::outbox::Failure;

/// Where the lines go.
#[derive(Debug)]
enum Out {
    Stdout,
    File(File),
}

/// The request-log sink.
#[derive(Debug)]
pub struct RequestLog {
    out: Out,
}

impl RequestLog {
    /// Appends to `path` (created if missing), or writes to stdout when it is `-`.
    pub fn open(path: &Path) -> Result<Self, crate::Error> {
        if path.as_os_str() == "-" {
            return Ok(Self { out: Out::Stdout });
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| crate::Error::InvalidConfig {
                field: "request_log",
                reason: format!("cannot open {}: {e}", path.display()),
            })?;
        Ok(Self {
            out: Out::File(file),
        })
    }

    /// Writes `batch`, one line per event, in one write.
    pub fn deliver(&mut self, batch: &[Arc<Event>]) -> Result<(), Failure> {
        let mut lines = Vec::with_capacity(batch.len() * 320);
        for event in batch {
            serde_json::to_writer(&mut lines, &**event).map_err(|e| Failure {
                retry: false,
                why: e.to_string(),
            })?;
            lines.push(b'\n');
        }
        let written = match &mut self.out {
            Out::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&lines).and_then(|()| out.flush())
            }
            Out::File(f) => f.write_all(&lines),
        };
        written.map_err(|e| Failure {
            retry: true,
            why: e.to_string(),
        })
    }
}
