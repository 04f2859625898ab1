//! `switchyard bind TOOL`: writes a coding tool's own config file so it talks to a Switchyard
//! edge with a client key. Existing settings are kept (the file is parsed and merged, not
//! replaced), the change is shown as a diff, and the previous file is kept as a backup.
//!
//! | tool          | file (under `$HOME`)                 | format |
//! |---------------|--------------------------------------|--------|
//! | `aider`       | `.aider.conf.yml`                    | YAML   |
//! | `continue`    | `.continue/config.yaml`              | YAML   |
//! | `claude-code` | `.claude/settings.json`              | JSON   |
//! | `codex`       | `.codex/config.toml`                 | TOML   |
//! | `open-webui`  | `.config/open-webui/switchyard.env`  | env    |
//! | `opencode`    | `.config/opencode/opencode.json`     | JSON   |

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{Run, Shutdown};

/// A tool `bind` knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tool {
    /// Aider (`~/.aider.conf.yml`).
    Aider,
    /// Continue (`~/.continue/config.yaml`).
    Continue,
    /// Claude Code (`~/.claude/settings.json`, its `env` block).
    ClaudeCode,
    /// Codex CLI (`~/.codex/config.toml`, a `switchyard` model provider).
    Codex,
    /// Open WebUI (an env file for `--env-file` / `open-webui serve`).
    OpenWebui,
    /// opencode (`~/.config/opencode/opencode.json`, a `switchyard` provider).
    Opencode,
}

impl Tool {
    /// Where the tool's config lives under `home`.
    pub fn path(self, home: &Path) -> PathBuf {
        home.join(match self {
            Tool::Aider => ".aider.conf.yml",
            Tool::Continue => ".continue/config.yaml",
            Tool::ClaudeCode => ".claude/settings.json",
            Tool::Codex => ".codex/config.toml",
            Tool::OpenWebui => ".config/open-webui/switchyard.env",
            Tool::Opencode => ".config/opencode/opencode.json",
        })
    }
}

/// `switchyard bind`.
#[derive(Debug, Args)]
pub struct BindArgs {
    /// The tool to configure.
    pub tool: Tool,
    /// Edge base URL (with or without `/v1`).
    #[arg(long, env = "SWITCHYARD_EDGE", default_value = "http://127.0.0.1:8080")]
    pub edge: String,
    /// Client key the tool sends (`switchyard keys create`).
    #[arg(long, env = "SWITCHYARD_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Model (or alias) the tool uses by default.
    #[arg(long, default_value = "fast")]
    pub model: String,
    /// Show the diff only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Run for BindArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let home = std::env::var_os("HOME").context("HOME is not set")?;
        bind(&self, Path::new(&home), &mut std::io::stdout().lock()).map(|_| ())
    }
}

/// What `bind` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The config file.
    pub path: PathBuf,
    /// The previous file, when there was one and it changed.
    pub backup: Option<PathBuf>,
    /// Whether the file was written.
    pub written: bool,
}

/// Writes `args.tool`'s config under `home`, printing the diff to `out`.
pub fn bind(args: &BindArgs, home: &Path, out: &mut impl Write) -> anyhow::Result<Bound> {
    let base = args
        .edge
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_string();
    let key = args.key.clone().unwrap_or_else(|| "sk-switchyard".into());
    let path = args.tool.path(home);
    let old = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = render(
        args.tool,
        old.as_deref().unwrap_or(""),
        &base,
        &key,
        &args.model,
    )
    .with_context(|| format!("{} is not valid; fix or move it first", path.display()))?;
    if old.as_deref() == Some(new.as_str()) {
        writeln!(out, "{} already points at {base}", path.display())?;
        return Ok(Bound {
            path,
            backup: None,
            written: false,
        });
    }
    writeln!(out, "--- {}", path.display())?;
    writeln!(out, "+++ {}", path.display())?;
    for line in diff(old.as_deref().unwrap_or(""), &new) {
        writeln!(out, "{line}")?;
    }
    if args.dry_run {
        writeln!(out, "(dry run: nothing written)")?;
        return Ok(Bound {
            path,
            backup: None,
            written: false,
        });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let backup = match &old {
        Some(text) => {
            let backup = path.with_extension(format!(
                "{}.switchyard-backup",
                path.extension().and_then(|e| e.to_str()).unwrap_or("")
            ));
            std::fs::write(&backup, text)
                .with_context(|| format!("writing {}", backup.display()))?;
            writeln!(out, "backup: {}", backup.display())?;
            Some(backup)
        }
        None => None,
    };
    write_private(&path, &new)?;
    writeln!(out, "wrote {}", path.display())?;
    if args.tool == Tool::Codex {
        writeln!(
            out,
            "codex reads the key from SWITCHYARD_API_KEY; export it, or use `switchyard run codex`"
        )?;
    }
    Ok(Bound {
        path,
        backup,
        written: true,
    })
}

/// The tool's config text with Switchyard set, merged into `old`. Pure.
pub fn render(tool: Tool, old: &str, base: &str, key: &str, model: &str) -> anyhow::Result<String> {
    let v1 = format!("{base}/v1");
    Ok(match tool {
        Tool::Aider => {
            let mut doc = yaml_map(old)?;
            doc.insert("openai-api-base".into(), v1.into());
            doc.insert("openai-api-key".into(), key.into());
            doc.insert("model".into(), format!("openai/{model}").into());
            serde_saphyr::to_string(&doc)?
        }
        Tool::Continue => {
            let mut doc = yaml_map(old)?;
            doc.entry("name").or_insert_with(|| "Switchyard".into());
            doc.entry("version").or_insert_with(|| "1.0.0".into());
            doc.entry("schema").or_insert_with(|| "v1".into());
            let entry = json!({
                "name": format!("switchyard {model}"), "provider": "openai", "model": model,
                "apiBase": v1, "apiKey": key, "roles": ["chat", "edit", "apply"]
            });
            let models = doc.entry("models").or_insert_with(|| json!([]));
            let Some(list) = models.as_array_mut() else {
                bail!("`models` is not a list");
            };
            list.retain(|m| {
                m.get("apiBase").and_then(|b| b.as_str()) != Some(v1.as_str())
                    || m.get("model").and_then(|b| b.as_str()) != Some(model)
            });
            list.push(entry);
            serde_saphyr::to_string(&doc)?
        }
        Tool::ClaudeCode => {
            let mut doc = json_object(old)?;
            let env = doc.entry("env").or_insert_with(|| json!({}));
            let Some(env) = env.as_object_mut() else {
                bail!("`env` is not an object");
            };
            env.insert("ANTHROPIC_BASE_URL".into(), base.into());
            env.insert("ANTHROPIC_AUTH_TOKEN".into(), key.into());
            env.insert("ANTHROPIC_MODEL".into(), model.into());
            format!("{}\n", serde_json::to_string_pretty(&doc)?)
        }
        Tool::Opencode => {
            let mut doc = json_object(old)?;
            doc.entry("$schema")
                .or_insert_with(|| "https://opencode.ai/config.json".into());
            let providers = doc.entry("provider").or_insert_with(|| json!({}));
            let Some(providers) = providers.as_object_mut() else {
                bail!("`provider` is not an object");
            };
            providers.insert(
                "switchyard".into(),
                json!({"npm": "@ai-sdk/openai-compatible", "name": "Switchyard",
                       "options": {"baseURL": v1, "apiKey": key},
                       "models": {model: {"name": model}}}),
            );
            doc.insert("model".into(), format!("switchyard/{model}").into());
            format!("{}\n", serde_json::to_string_pretty(&doc)?)
        }
        Tool::Codex => {
            let mut doc: toml_edit::DocumentMut = old.parse()?;
            doc["model_provider"] = toml_edit::value("switchyard");
            doc["model"] = toml_edit::value(model);
            let mut provider = toml_edit::Table::new();
            provider["name"] = toml_edit::value("Switchyard");
            provider["base_url"] = toml_edit::value(v1);
            provider["env_key"] = toml_edit::value("SWITCHYARD_API_KEY");
            provider["wire_api"] = toml_edit::value("responses");
            let providers = doc
                .entry("model_providers")
                .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
            let Some(providers) = providers.as_table_mut() else {
                bail!("`model_providers` is not a table");
            };
            providers.set_implicit(true);
            providers.insert("switchyard", toml_edit::Item::Table(provider));
            doc.to_string()
        }
        Tool::OpenWebui => {
            let mut lines: Vec<String> = old
                .lines()
                .filter(|l| {
                    !l.starts_with("OPENAI_API_BASE_URL=") && !l.starts_with("OPENAI_API_KEY=")
                })
                .map(str::to_string)
                .collect();
            lines.push(format!("OPENAI_API_BASE_URL={v1}"));
            lines.push(format!("OPENAI_API_KEY={key}"));
            format!("{}\n", lines.join("\n"))
        }
    })
}

/// A YAML file's top-level mapping (its keys come back sorted when written).
fn yaml_map(old: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    if old.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_saphyr::from_str::<serde_json::Value>(old)? {
        serde_json::Value::Object(m) => Ok(m),
        serde_json::Value::Null => Ok(serde_json::Map::new()),
        _ => bail!("the top level is not a mapping"),
    }
}

fn json_object(old: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    if old.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str(old)? {
        serde_json::Value::Object(m) => Ok(m),
        _ => bail!("the top level is not an object"),
    }
}

/// A line diff of `old` and `new` (longest common subsequence): ` ` kept, `-` removed, `+`
/// added. Config files are small, so the quadratic table is fine.
pub fn diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!(" {}", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+{}", b[j]));
            j += 1;
        } else {
            out.push(format!("-{}", a[i]));
            i += 1;
        }
    }
    out
}

/// Writes `text` readable by its owner only: it holds a key.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_mark_kept_removed_and_added_lines() {
        assert_eq!(diff("a\nb\nc\n", "a\nc\nd\n"), vec![" a", "-b", " c", "+d"]);
        assert_eq!(diff("", "x\n"), vec!["+x"]);
    }
}
