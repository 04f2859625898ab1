//! `switchyard run TOOL -- ARGS…`: starts a coding tool pointed at a Switchyard edge, by setting
//! the base-URL and key variables the tool reads, then replacing this process with it.
//!
//! | tool     | variables                                              |
//! |----------|--------------------------------------------------------|
//! | `claude` | `ANTHROPIC_BASE_URL` (no `/v1`), `ANTHROPIC_AUTH_TOKEN` |
//! | `codex`  | `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `SWITCHYARD_API_KEY` |
//! | `aider`  | `OPENAI_API_BASE`, `OPENAI_API_KEY`                     |

use std::ffi::OsString;

use clap::{Args, ValueEnum};

use super::{Run, Shutdown};

/// A tool `run` knows how to point at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Runnable {
    /// Claude Code (`claude`), over the edge's Anthropic Messages API.
    Claude,
    /// Codex CLI (`codex`).
    Codex,
    /// Aider (`aider`).
    Aider,
}

/// `switchyard run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The tool to start.
    pub tool: Runnable,
    /// Edge base URL (with or without `/v1`).
    #[arg(long, env = "SWITCHYARD_EDGE", default_value = "http://127.0.0.1:8080")]
    pub edge: String,
    /// Client key the tool sends.
    #[arg(long, env = "SWITCHYARD_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Arguments passed to the tool unchanged (after `--`).
    #[arg(last = true)]
    pub args: Vec<OsString>,
}

impl Run for RunArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt as _;
        let mut command = command(&self);
        // Only returns on failure: on success this process becomes the tool.
        let error = command.exec();
        Err(anyhow::anyhow!(
            "cannot start `{}`: {error} (is it installed and on PATH?)",
            program(self.tool)
        ))
    }
}

/// The executable each tool is started as.
pub fn program(tool: Runnable) -> &'static str {
    match tool {
        Runnable::Claude => "claude",
        Runnable::Codex => "codex",
        Runnable::Aider => "aider",
    }
}

/// The variables `tool` reads to reach the edge at `edge` with `key`. Pure.
pub fn variables(tool: Runnable, edge: &str, key: &str) -> Vec<(&'static str, String)> {
    let base = edge.trim_end_matches('/').trim_end_matches("/v1");
    let v1 = format!("{base}/v1");
    match tool {
        Runnable::Claude => vec![
            ("ANTHROPIC_BASE_URL", base.to_string()),
            ("ANTHROPIC_AUTH_TOKEN", key.to_string()),
        ],
        Runnable::Codex => vec![
            ("OPENAI_BASE_URL", v1),
            ("OPENAI_API_KEY", key.to_string()),
            ("SWITCHYARD_API_KEY", key.to_string()),
        ],
        Runnable::Aider => vec![("OPENAI_API_BASE", v1), ("OPENAI_API_KEY", key.to_string())],
    }
}

/// The command `run` execs: the tool, its arguments, and the variables set.
pub fn command(args: &RunArgs) -> std::process::Command {
    let key = args.key.clone().unwrap_or_else(|| "sk-switchyard".into());
    let mut command = std::process::Command::new(program(args.tool));
    command.args(&args.args);
    for (name, value) in variables(args.tool, &args.edge, &key) {
        command.env(name, value);
    }
    command
}
