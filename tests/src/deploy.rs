//! Helpers for the deployment tests: rendering the Helm chart, reading manifests and unit files,
//! and finding the built `switchyard` binary.
//!
//! helm comes from `$HELM`, `PATH`, or `.ci/install-helm` (into `target/tools/helm`, run on first
//! use); the binary is built from this checkout on first use. A tool that cannot be had is a
//! failure that names what failed, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use serde_json::Value;

/// The workspace root (the directory holding `helm/`, `deploy/` and `.ci/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("helm/switchyard")
}

/// The build's profile directory (`target/debug`), found from this test executable's path.
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the test executable")?;
    // target/debug/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the test executable has no target/<profile> directory above it")
}

/// The helm binary: `$HELM`, else `target/tools/helm`, else `helm` on `PATH`, else installed
/// into `target/tools/helm` by `.ci/install-helm` on first use (once per test process).
pub fn helm() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("HELM") {
        return Ok(PathBuf::from(path));
    }
    let installed = workspace_root().join("target/tools/helm");
    if installed.is_file() {
        return Ok(installed);
    }
    if Command::new("helm").arg("version").output().is_ok() {
        return Ok(PathBuf::from("helm"));
    }
    static INSTALL: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALL
        .get_or_init(|| {
            let script = workspace_root().join(".ci/install-helm");
            match Command::new("bash").arg(&script).output() {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("helm is missing and `.ci/install-helm` failed: {e}"))?;
    Ok(installed)
}

/// The `switchyard` binary, built from this checkout on first use in each test process
/// (`cargo build -p switchyard`, a no-op when up to date), so tests never run a stale binary.
/// `$SWITCHYARD_BIN` overrides it.
pub fn switchyard_bin() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let profile = profile_dir()?;
    static BUILD: OnceLock<Result<(), String>> = OnceLock::new();
    BUILD
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "-p", "switchyard", "--bin", "switchyard"])
                .current_dir(workspace_root());
            if profile.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            match build.output() {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("cannot build the switchyard binary: {e}"))?;
    let path = profile.join("switchyard");
    anyhow::ensure!(path.is_file(), "{} was not built", path.display());
    Ok(path)
}

/// Runs helm with `args` in the chart directory.
pub fn helm_run(args: &[&str]) -> anyhow::Result<Output> {
    let helm = helm()?;
    Command::new(&helm)
        .args(args)
        .current_dir(chart_dir())
        .output()
        .with_context(|| format!("cannot run {}", helm.display()))
}

/// `helm template sy . <extra>`: the rendered manifests, or helm's complaint.
pub fn render(extra: &[&str]) -> anyhow::Result<Vec<Value>> {
    let mut args = vec!["template", "sy", ".", "--namespace", "llm"];
    args.extend_from_slice(extra);
    let out = helm_run(&args)?;
    if !out.status.success() {
        bail!(
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_documents(&String::from_utf8_lossy(&out.stdout))
}

/// Renders with one of the chart's `ci/*-values.yaml` files.
pub fn render_ci(name: &str) -> anyhow::Result<Vec<Value>> {
    let file = format!("ci/{name}-values.yaml");
    render(&["-f", &file])
}

/// Parses a multi-document YAML stream, dropping empty documents.
pub fn parse_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The manifest of `kind` named `name`.
pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    docs.iter()
        .find(|d| str_at(d, "kind") == Some(kind) && str_at(d, "metadata.name") == Some(name))
        .with_context(|| {
            let have: Vec<String> = docs
                .iter()
                .map(|d| {
                    format!(
                        "{}/{}",
                        str_at(d, "kind").unwrap_or("?"),
                        str_at(d, "metadata.name").unwrap_or("?")
                    )
                })
                .collect();
            format!("no {kind} {name} rendered; have {have:?}")
        })
}

/// Every manifest of `kind`.
pub fn all_of<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| str_at(d, "kind") == Some(kind))
        .collect()
}

/// The value at a dotted path (`spec.template.spec`); list items by index (`containers.0`).
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |v, key| match key.parse::<usize>() {
            Ok(index) if v.is_array() => v.get(index),
            _ => v.get(key),
        })
}

/// The string at a dotted path.
pub fn str_at<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path)?.as_str()
}

/// The first container of a workload's pod template.
pub fn container(workload: &Value) -> anyhow::Result<&Value> {
    at(workload, "spec.template.spec.containers.0").context("the workload has no container")
}

/// A container's env var value (literal `value`) by name.
pub fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    env_entry(container, name).and_then(|e| str_at(e, "value"))
}

/// A container's env entry by name.
pub fn env_entry<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    at(container, "env")?
        .as_array()?
        .iter()
        .find(|e| str_at(e, "name") == Some(name))
}

/// A container's args as strings.
pub fn args(container: &Value) -> Vec<String> {
    at(container, "args")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The long flags (`--name`) `switchyard <subcommand> --help` lists.
pub fn flags_of(subcommand: &str) -> anyhow::Result<Vec<String>> {
    let bin = switchyard_bin()?;
    let out = Command::new(&bin)
        .args([subcommand, "--help"])
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "switchyard {subcommand} --help failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(long_flags(&String::from_utf8_lossy(&out.stdout)))
}

/// Every `--flag` in `text`.
pub fn long_flags(text: &str) -> Vec<String> {
    let mut flags: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// A ConfigMap's or Secret's `data` entry (keys such as `config.yaml` contain dots).
pub fn data_entry<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("data")?.get(key)?.as_str()
}
