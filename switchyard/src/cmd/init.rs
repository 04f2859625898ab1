//! `switchyard init`: writes a first `config.yaml`. It offers every provider whose key is in
//! the environment (the file references the variable, never the key), every local model
//! server it finds on this host (Ollama, LM Studio, vLLM on their default ports), and a client
//! key (the file keeps only its hash; the key is shown once).
//!
//! Interactive by default: one question per line on stdin, Enter takes the default shown in
//! brackets. `--yes` asks nothing and takes the defaults and the flags, for scripts. An
//! existing file is never overwritten without `--force`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use switchyard_control_plane::config::providers::{self, PRESETS};
use switchyard_control_plane::seal;

use super::{Run, Shutdown};

/// Where local model servers listen by default: (kind, endpoint id, listing URL, base URL).
const LOCAL_SERVERS: [(&str, &str, &str); 3] = [
    (
        "ollama",
        "http://127.0.0.1:11434/api/tags",
        "http://127.0.0.1:11434/v1",
    ),
    (
        "lmstudio",
        "http://127.0.0.1:1234/v1/models",
        "http://127.0.0.1:1234/v1",
    ),
    (
        "vllm",
        "http://127.0.0.1:8000/v1/models",
        "http://127.0.0.1:8000/v1",
    ),
];

/// `switchyard init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// The file to write.
    #[arg(long, default_value = "config.yaml")]
    pub out: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Ask nothing: take the flags, every provider with a key in the environment (unless
    /// `--provider` names some) and every local server found.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// A provider preset to include (`groq`, `openrouter`, ...); repeatable.
    #[arg(long = "provider", value_name = "NAME")]
    pub providers: Vec<String>,
    /// A local server to include, as `KIND=URL` (`ollama=http://10.0.0.2:11434/v1`); repeatable.
    #[arg(long = "local", value_name = "KIND=URL")]
    pub locals: Vec<String>,
    /// Do not look for model servers on this host.
    #[arg(long)]
    pub no_scan: bool,
    /// Do not create a client key (the edge then answers without one).
    #[arg(long)]
    pub no_key: bool,
}

/// What the file will declare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// (preset name, environment variables holding its keys).
    pub providers: Vec<(String, Vec<String>)>,
    /// (kind, base URL) of local servers.
    pub locals: Vec<(String, String)>,
    /// Whether to create a client key.
    pub key: bool,
}

/// What `init` did.
#[derive(Debug, Clone)]
pub struct Written {
    /// The plan the file declares.
    pub plan: Plan,
    /// The client key, shown once; `None` with `--no-key`.
    pub key: Option<String>,
    /// The file's text.
    pub text: String,
}

impl Run for InitArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let mut input = std::io::stdin().lock();
        init(&self, &env, &mut input, &mut std::io::stdout().lock())
            .await
            .map(|_| ())
    }
}

/// Runs the wizard (or, with `--yes`, takes the defaults), writes the file and says what it
/// wrote to `out`.
pub async fn init(
    args: &InitArgs,
    env: &BTreeMap<String, String>,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<Written> {
    if args.out.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let found = Plan {
        providers: offered_providers(args, env)?,
        locals: offered_locals(args).await?,
        key: !args.no_key,
    };
    let plan = if args.yes {
        found
    } else {
        ask(found, env, input, out)?
    };
    let key = if plan.key {
        Some(seal::new_client_secret()?)
    } else {
        None
    };
    let text = render(&plan, key.as_deref().map(seal::sha256_hex).as_deref())?;
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    summarize(out, args, &plan, key.as_deref())?;
    Ok(Written { plan, key, text })
}

/// The providers to offer: `--provider` names, else every preset with a key in `env`.
fn offered_providers(
    args: &InitArgs,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    if args.providers.is_empty() {
        return Ok(PRESETS
            .iter()
            .filter_map(|p| {
                let ring = p.key_ring(env);
                (!ring.is_empty()).then(|| (p.name.to_string(), ring))
            })
            .collect());
    }
    args.providers
        .iter()
        .map(|name| provider(name, env))
        .collect()
}

/// The preset `name` with the variables holding its keys (the default variable when unset).
fn provider(name: &str, env: &BTreeMap<String, String>) -> anyhow::Result<(String, Vec<String>)> {
    let Some(preset) = providers::find(name) else {
        bail!("unknown provider `{name}`; known: {}", providers::names());
    };
    let mut ring = preset.key_ring(env);
    if ring.is_empty() {
        ring.push(format!("{}_API_KEY", preset.env_stem));
    }
    Ok((preset.name.to_string(), ring))
}

/// `--local` entries, then the servers answering on this host's default ports.
async fn offered_locals(args: &InitArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut locals = Vec::new();
    for entry in &args.locals {
        let Some((kind, url)) = entry.split_once('=') else {
            bail!("--local `{entry}`: expected KIND=URL");
        };
        if !matches!(kind, "ollama" | "lmstudio" | "vllm" | "openai" | "litellm") {
            bail!("--local `{entry}`: kind must be ollama, lmstudio, vllm, litellm or openai");
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            bail!("--local `{entry}`: the URL must start with http:// or https://");
        }
        locals.push((kind.to_string(), url.trim_end_matches('/').to_string()));
    }
    if args.no_scan {
        return Ok(locals);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(1_500))
        .build()?;
    for (kind, listing, base) in LOCAL_SERVERS {
        let answers = http
            .get(listing)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if answers && !locals.iter().any(|(_, url)| url == base) {
            locals.push((kind.to_string(), base.to_string()));
        }
    }
    Ok(locals)
}

/// Reads one answer; `None` at the end of input.
fn answer(input: &mut impl BufRead) -> anyhow::Result<Option<String>> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_string()))
}

/// A yes/no question; Enter (or the end of input) takes `default`.
fn confirm(
    input: &mut impl BufRead,
    out: &mut impl Write,
    question: &str,
    default: bool,
) -> anyhow::Result<bool> {
    loop {
        write!(out, "{question} [{}] ", if default { "Y/n" } else { "y/N" })?;
        out.flush()?;
        let Some(reply) = answer(input)? else {
            writeln!(out)?;
            return Ok(default);
        };
        match reply.to_ascii_lowercase().as_str() {
            "" => return Ok(default),
            "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => writeln!(out, "please answer y or n")?,
        }
    }
}

/// The interactive questions over what was found.
fn ask(
    found: Plan,
    env: &BTreeMap<String, String>,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<Plan> {
    writeln!(
        out,
        "switchyard init: a few questions; Enter takes the [default]."
    )?;
    let mut plan = Plan::default();
    for (name, ring) in found.providers {
        let question = format!("Use provider {name} (key in {})?", ring.join(", "));
        if confirm(input, out, &question, true)? {
            plan.providers.push((name, ring));
        }
    }
    loop {
        write!(
            out,
            "Another provider ({}; Enter for none): ",
            providers::names()
        )?;
        out.flush()?;
        let Some(name) = answer(input)?.filter(|n| !n.is_empty()) else {
            break;
        };
        match provider(&name, env) {
            Ok(p) if plan.providers.iter().any(|(n, _)| *n == p.0) => {
                writeln!(out, "{} is already in", p.0)?;
            }
            Ok((name, ring)) => {
                writeln!(out, "{name}: its key is read from {}", ring.join(", "))?;
                plan.providers.push((name, ring));
            }
            Err(e) => writeln!(out, "{e}")?,
        }
    }
    for (kind, url) in found.locals {
        if confirm(input, out, &format!("Use local {kind} at {url}?"), true)? {
            plan.locals.push((kind, url));
        }
    }
    plan.key = confirm(input, out, "Create a client key for the edge?", found.key)?;
    Ok(plan)
}

/// The file's text: a header comment, then the YAML.
pub fn render(plan: &Plan, key_sha256: Option<&str>) -> anyhow::Result<String> {
    let mut doc = serde_json::Map::new();
    if !plan.providers.is_empty() {
        let providers: serde_json::Map<String, Value> = plan
            .providers
            .iter()
            .map(|(name, ring)| {
                let keys: Vec<Value> = ring
                    .iter()
                    .map(|var| json!({"api_key": format!("os.environ/{var}")}))
                    .collect();
                (name.clone(), json!({"keys": keys}))
            })
            .collect();
        doc.insert("providers".into(), Value::Object(providers));
    }
    if !plan.locals.is_empty() {
        let mut ids: Vec<String> = Vec::new();
        let endpoints: Vec<Value> = plan
            .locals
            .iter()
            .map(|(kind, url)| {
                let id = unique(kind, &ids);
                ids.push(id.clone());
                json!({"id": id, "url": url, "kind": kind})
            })
            .collect();
        doc.insert("endpoints".into(), Value::Array(endpoints));
    }
    if let Some(hash) = key_sha256 {
        doc.insert(
            "keys".into(),
            json!([{"id": "default", "name": "written by switchyard init", "sha256": hash}]),
        );
    }
    let yaml = if doc.is_empty() {
        String::new()
    } else {
        serde_saphyr::to_string(&Value::Object(doc))?
    };
    Ok(format!(
        "# Switchyard config written by `switchyard init`; see docs/configuration.md.\n\
         # Provider keys are read from the environment variables named here.\n{yaml}"
    ))
}

/// `kind`, or `kind-2`, `kind-3`, ... when taken.
fn unique(kind: &str, taken: &[String]) -> String {
    (1..)
        .map(|n| {
            if n == 1 {
                kind.to_string()
            } else {
                format!("{kind}-{n}")
            }
        })
        .find(|id| !taken.contains(id))
        .unwrap_or_else(|| kind.to_string())
}

fn summarize(
    out: &mut impl Write,
    args: &InitArgs,
    plan: &Plan,
    key: Option<&str>,
) -> anyhow::Result<()> {
    writeln!(out, "wrote {}", args.out.display())?;
    let providers: Vec<String> = plan
        .providers
        .iter()
        .map(|(name, ring)| format!("{name} ({})", ring.join(", ")))
        .collect();
    let none = || "none".to_string();
    let list = |v: Vec<String>| if v.is_empty() { none() } else { v.join(", ") };
    writeln!(out, "  providers:     {}", list(providers))?;
    let locals = plan
        .locals
        .iter()
        .map(|(kind, url)| format!("{kind} {url}"))
        .collect();
    writeln!(out, "  local servers: {}", list(locals))?;
    match key {
        Some(key) => writeln!(
            out,
            "  client key:    {key}\n                 (shown once; the file keeps only its hash)"
        )?,
        None => writeln!(out, "  client key:    none")?,
    }
    writeln!(out, "next: switchyard up --config {}", args.out.display())?;
    Ok(())
}
