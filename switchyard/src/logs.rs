//! Logging for every role (`up`, `control-plane`, `edge`, `node-agent` and the admin verbs):
//! lines go to stderr, since stdout carries the verbs' output (tables, `--json`).
//!
//! Colour codes are written only when stderr is a terminal and `NO_COLOR` is unset or empty
//! (<https://no-color.org>): a file, a pipe or journald gets plain text.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The filter when `RUST_LOG` is unset: openraft's info lines are per-heartbeat noise.
const DEFAULT_FILTER: &str = "info,openraft=warn";

/// How log lines are written: chosen once at start-up from the flags and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStyle {
    /// Text for people, or one JSON object per line.
    pub format: LogFormat,
    /// Whether text lines carry ANSI colour codes.
    pub colour: bool,
}

impl LogStyle {
    /// The style for `format` in this process: colour from stderr and `NO_COLOR`.
    pub fn detect(format: LogFormat) -> Self {
        Self {
            format,
            colour: wants_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ),
        }
    }
}

/// Colour only on a terminal, and never while `NO_COLOR` holds a non-empty value.
pub fn wants_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the process's log subscriber: `RUST_LOG` (else [`DEFAULT_FILTER`]) picks the lines,
/// `style` how they look. Call once, before anything logs.
pub fn init(style: LogStyle) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(style.colour);
    match style.format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let cases: [(bool, Option<&str>, bool); 6] = [
            (true, None, true),
            (true, Some(""), true),
            (true, Some("1"), false),
            (true, Some("false"), false),
            (false, None, false),
            (false, Some("1"), false),
        ];
        for (terminal, no_color, want) in cases {
            assert_eq!(
                wants_colour(terminal, no_color.map(OsStr::new)),
                want,
                "terminal {terminal}, NO_COLOR {no_color:?}"
            );
        }
    }
}
