//! The files in `deploy/`: the Dockerfile, compose.yaml, the systemd units and the example env
//! files, checked against the flags and environment variables the built binary really accepts.
//!
//! Needs `target/<profile>/switchyard` (`cargo build -p switchyard`, as `.ci/run` does) and the
//! chart tests' helm. `systemd-analyze verify` runs on the units when it is installed; the
//! key-by-key checks run always.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde_json::Value;
use switchyard_tests::deploy::{
    args, container, data_entry, find, flags_of, long_flags, render, str_at, switchyard_bin,
    workspace_root,
};

fn read(path: &str) -> anyhow::Result<String> {
    let full = workspace_root().join(path);
    std::fs::read_to_string(&full).with_context(|| format!("cannot read {}", full.display()))
}

/// Environment variables `switchyard <subcommand> --help` names (`[env: NAME=]`).
fn envs_of(subcommand: &str) -> anyhow::Result<BTreeSet<String>> {
    let out = Command::new(switchyard_bin()?)
        .args([subcommand, "--help"])
        .output()?;
    let help = String::from_utf8_lossy(&out.stdout);
    Ok(help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect())
}

/// Flags in `used` that `subcommand` does not accept.
fn unknown_flags(subcommand: &str, used: &[String]) -> anyhow::Result<Vec<String>> {
    let known = flags_of(subcommand)?;
    Ok(used
        .iter()
        .filter(|f| !known.contains(f))
        .cloned()
        .collect())
}

#[test]
fn dockerfile_is_multi_stage_and_runs_unprivileged() -> anyhow::Result<()> {
    let text = read("deploy/Dockerfile")?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let stages: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    assert!(stages[0].contains(" AS build"), "{stages:?}");
    // Everything below concerns the final stage only.
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .unwrap_or(0);
    let final_stage = &lines[last_from..];
    assert!(
        final_stage.iter().any(
            |l| l.starts_with("COPY --from=build ") && l.ends_with("/usr/local/bin/switchyard")
        ),
        "the final stage copies the binary from the build stage"
    );
    let user = final_stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .context("the final stage sets no USER")?;
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER must be a numeric non-root uid (runAsNonRoot can check only numbers): {user}"
    );
    assert!(
        final_stage
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT ") && l.contains("\"/usr/local/bin/switchyard\"")),
        "ENTRYPOINT runs the binary"
    );
    // The chart's pods run as 65532 too.
    let values = read("helm/switchyard/values.yaml")?;
    assert!(
        values.contains(&format!("runAsUser: {uid}")),
        "chart runAsUser = image USER"
    );
    // The build stage's toolchain matches the workspace's.
    let toolchain = read("rust-toolchain.toml")?;
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|c| c.trim_matches('"').to_owned())
        .context("no channel in rust-toolchain.toml")?;
    let minor = channel
        .rsplit_once('.')
        .map_or(channel.as_str(), |(m, _)| m);
    assert!(
        stages[0].contains(&format!("rust:{minor}")),
        "{stages:?} vs {channel}"
    );
    Ok(())
}

#[test]
fn compose_wires_three_voters_two_edges_and_an_agent() -> anyhow::Result<()> {
    let text = read("deploy/compose.yaml")?;
    // `<<: *switchyard` merges as compose does (serde-saphyr expands merge keys).
    let compose: Value = serde_saphyr::from_str(&text)?;
    let services = compose
        .get("services")
        .and_then(Value::as_object)
        .context("compose.yaml has no services")?;
    let declared_volumes: BTreeSet<String> = compose
        .get("volumes")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();

    let mut by_role: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut node_ids = BTreeSet::new();
    let mut bootstrappers = Vec::new();
    let mut joins = Vec::new();
    for (name, service) in services {
        let name = name.clone();
        // Merged from the x-switchyard anchor: hardened like the chart's pods.
        assert_eq!(
            service.get("read_only").and_then(Value::as_bool),
            Some(true),
            "{name}"
        );
        assert_eq!(str_at(service, "user"), Some("65532:65532"), "{name}");
        let command: Vec<String> = service
            .get("command")
            .and_then(Value::as_array)
            .with_context(|| format!("{name} has no command list"))?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let role = command.first().cloned().unwrap_or_default();
        let opts: BTreeMap<String, String> = command[1..]
            .iter()
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (a.clone(), String::new()),
            })
            .collect();
        let flags: Vec<String> = opts.keys().cloned().collect();
        let unknown = unknown_flags(&role, &flags)?;
        assert!(
            unknown.is_empty(),
            "{name}: `switchyard {role}` has no {unknown:?}"
        );

        let volumes: Vec<String> = service
            .get("volumes")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for volume in &volumes {
            let source = volume.split(':').next().unwrap_or_default();
            assert!(
                declared_volumes.contains(source),
                "{name}: volume {source} is not declared"
            );
        }
        match role.as_str() {
            "control-plane" => {
                assert_eq!(
                    opts.get("--advertise").map(String::as_str),
                    Some(format!("{name}:7700").as_str())
                );
                assert!(
                    node_ids.insert(opts.get("--node-id").cloned().unwrap_or_default()),
                    "{name}: duplicate --node-id"
                );
                let data = opts.get("--data-dir").cloned().unwrap_or_default();
                assert!(
                    volumes.iter().any(|v| v.ends_with(&format!(":{data}"))),
                    "{name}: {data} is not on a volume"
                );
                if opts.contains_key("--bootstrap") {
                    bootstrappers.push(name.clone());
                }
                if let Some(url) = opts.get("--join") {
                    joins.push(url.clone());
                }
            }
            "edge" => {
                let port = opts
                    .get("--listen")
                    .and_then(|l| l.rsplit_once(':'))
                    .map(|(_, p)| p.to_owned());
                let ports: Vec<String> = service
                    .get("ports")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                assert!(
                    ports
                        .iter()
                        .any(|p| Some(p.rsplit(':').next().unwrap_or_default().to_owned()) == port),
                    "{name}: published {ports:?} do not reach --listen {port:?}"
                );
                let cache = opts.get("--table-cache").cloned().unwrap_or_default();
                assert!(
                    volumes
                        .iter()
                        .any(|v| cache.starts_with(v.split(':').nth(1).unwrap_or("?"))),
                    "{name}: table cache not on a volume"
                );
            }
            _ => {}
        }
        if let Some(url) = opts.get("--control-plane") {
            let host = url
                .trim_start_matches("http://")
                .split(':')
                .next()
                .unwrap_or_default();
            assert!(
                services.contains_key(host),
                "{name}: --control-plane {url} is no service"
            );
        }
        if let Some(test) = service
            .get("healthcheck")
            .and_then(|h| h.get("test"))
            .and_then(Value::as_array)
        {
            let test: Vec<&str> = test.iter().filter_map(Value::as_str).collect();
            assert_eq!(
                test.get(..3),
                Some(["CMD", "switchyard", "doctor"].as_slice()),
                "{name}: {test:?}"
            );
            let unknown = unknown_flags("doctor", &long_flags(&test.join(" ")))?;
            assert!(
                unknown.is_empty(),
                "{name}: `switchyard doctor` has no {unknown:?}"
            );
        }
        by_role.entry(role).or_default().push(name);
    }
    assert_eq!(
        by_role.get("control-plane").map(Vec::len),
        Some(3),
        "{by_role:?}"
    );
    assert_eq!(by_role.get("edge").map(Vec::len), Some(2), "{by_role:?}");
    assert_eq!(
        by_role.get("node-agent").map(Vec::len),
        Some(1),
        "{by_role:?}"
    );
    assert_eq!(bootstrappers, ["cp1"], "exactly one voter bootstraps");
    assert_eq!(joins, ["http://cp1:7700", "http://cp1:7700"]);
    Ok(())
}

#[test]
fn chart_and_compose_use_only_flags_and_env_the_binary_has() -> anyhow::Result<()> {
    let docs = render(&["--set", "nodeAgent.probes[0]=ollama=11434"])?;
    let edge = args(container(find(&docs, "Deployment", "sy-switchyard-edge")?)?);
    let agent = args(container(find(
        &docs,
        "DaemonSet",
        "sy-switchyard-node-agent",
    )?)?);
    let script = find(&docs, "ConfigMap", "sy-switchyard-config")
        .ok()
        .and_then(|c| data_entry(c, "start-control-plane.sh"))
        .unwrap_or_default()
        .to_owned();
    let mut problems = Vec::new();
    for (role, used) in [
        ("edge", long_flags(&edge.join(" "))),
        ("node-agent", long_flags(&agent.join(" "))),
        ("control-plane", long_flags(&script)),
    ] {
        for flag in unknown_flags(role, &used)? {
            problems.push(format!("chart passes {flag} to `switchyard {role}`"));
        }
    }
    // Environment the chart relies on being read by the binary.
    for (role, envs) in [
        (
            "control-plane",
            [
                "SWITCHYARD_NODE_ID",
                "SWITCHYARD_ADVERTISE",
                "SWITCHYARD_JOIN_TOKEN",
                "SWITCHYARD_ADMIN_TOKENS",
                "SWITCHYARD_CLUSTER_KEY",
                "SWITCHYARD_TLS_CA",
                "SWITCHYARD_TLS_CERT",
                "SWITCHYARD_TLS_KEY",
                "SWITCHYARD_HTTPS_CERT",
                "SWITCHYARD_HTTPS_KEY",
            ]
            .as_slice(),
        ),
        (
            "node-agent",
            [
                "SWITCHYARD_NODE_NAME",
                "SWITCHYARD_JOIN_TOKEN",
                "SWITCHYARD_TLS_CA",
                "SWITCHYARD_TLS_CERT",
                "SWITCHYARD_TLS_KEY",
            ]
            .as_slice(),
        ),
        (
            "edge",
            [
                "SWITCHYARD_EDGE_NAME",
                "SWITCHYARD_TLS_CA",
                "SWITCHYARD_TLS_CERT",
                "SWITCHYARD_TLS_KEY",
                "SWITCHYARD_HTTPS_CERT",
                "SWITCHYARD_HTTPS_KEY",
            ]
            .as_slice(),
        ),
        (
            "doctor",
            [
                "SWITCHYARD_TLS_CA",
                "SWITCHYARD_TLS_CERT",
                "SWITCHYARD_TLS_KEY",
            ]
            .as_slice(),
        ),
    ] {
        let known = envs_of(role)?;
        for env in envs {
            if !known.contains(*env) {
                problems.push(format!("`switchyard {role}` reads no {env}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// `KEY=value` lines of an env file, comments skipped.
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `[Section]` → key → values of a unit file (keys may repeat).
fn unit_file(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            sections
                .entry(current.clone())
                .or_default()
                .entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    sections
}

const UNITS: [(&str, &str, &str); 3] = [
    (
        "switchyard-control-plane.service",
        "control-plane",
        "control-plane.env",
    ),
    (
        "switchyard-node-agent.service",
        "node-agent",
        "node-agent.env",
    ),
    ("switchyard-edge.service", "edge", "edge.env"),
];

#[test]
fn systemd_units_are_hardened_and_match_their_env_files() -> anyhow::Result<()> {
    for (unit, role, env) in UNITS {
        let sections = unit_file(&read(&format!("deploy/systemd/{unit}"))?);
        let get = |section: &str, key: &str| -> Vec<String> {
            sections
                .get(section)
                .and_then(|s| s.get(key))
                .cloned()
                .unwrap_or_default()
        };
        assert!(!get("Unit", "Description").is_empty(), "{unit}");
        assert!(
            get("Unit", "After")
                .iter()
                .any(|a| a.contains("network-online.target")),
            "{unit}"
        );
        let exec = get("Service", "ExecStart").join(" ");
        assert!(
            exec.starts_with(&format!("/usr/local/bin/switchyard {role} ")),
            "{unit}: {exec}"
        );
        assert_eq!(
            get("Service", "EnvironmentFile"),
            [format!("/etc/switchyard/{env}")],
            "{unit}"
        );
        assert!(
            get("Service", "Restart")
                .iter()
                .any(|r| r == "on-failure" || r == "always"),
            "{unit}"
        );
        assert_eq!(get("Service", "DynamicUser"), ["yes"], "{unit}");
        for (key, want) in [
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
        ] {
            assert_eq!(get("Service", key), [want], "{unit}: {key}");
        }
        assert_eq!(
            get("Service", "CapabilityBoundingSet"),
            [""],
            "{unit}: no capabilities"
        );
        assert_eq!(get("Install", "WantedBy"), ["multi-user.target"], "{unit}");
        if role == "control-plane" {
            assert_eq!(get("Service", "StateDirectory"), ["switchyard"], "{unit}");
            assert!(
                get("Service", "Environment")
                    .contains(&"SWITCHYARD_DATA_DIR=/var/lib/switchyard".to_owned())
            );
        }

        // Every SWITCHYARD_* in the example env file is read by the role, and its extra args
        // are flags the role accepts.
        let vars = env_file(&read(&format!("deploy/examples/{env}"))?);
        let known = envs_of(role)?;
        for key in vars
            .keys()
            .filter(|k| k.starts_with("SWITCHYARD_") && *k != "SWITCHYARD_ARGS")
        {
            assert!(
                known.contains(key),
                "{env}: `switchyard {role}` reads no {key} (it reads {known:?})"
            );
        }
        let extra = vars.get("SWITCHYARD_ARGS").cloned().unwrap_or_default();
        let unknown = unknown_flags(role, &long_flags(&extra))?;
        assert!(unknown.is_empty(), "{env}: SWITCHYARD_ARGS has {unknown:?}");
    }
    Ok(())
}

#[test]
fn systemd_analyze_verifies_the_units() -> anyhow::Result<()> {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        // Not installed: the key-by-key test above still runs; say so in the output.
        eprintln!("systemd-analyze is not installed; only the unit-file key checks ran");
        return Ok(());
    };
    assert!(version.status.success());
    // verify insists ExecStart exists, so the copies point at the built binary.
    let bin = switchyard_bin()?;
    let dir = tempfile::tempdir()?;
    let mut paths = Vec::new();
    for (unit, _, _) in UNITS {
        let text = read(&format!("deploy/systemd/{unit}"))?
            .replace("/usr/local/bin/switchyard", &bin.display().to_string());
        let path = dir.path().join(unit);
        std::fs::write(&path, text)?;
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(paths.iter().map(|p| p.as_path()).collect::<Vec<&Path>>())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys are only warnings to verify; they are errors here.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
    Ok(())
}

#[test]
fn the_compose_tls_override_gives_every_service_its_own_files() -> anyhow::Result<()> {
    let base: Value = serde_saphyr::from_str(&read("deploy/compose.yaml")?)?;
    let tls: Value = serde_saphyr::from_str(&read("deploy/compose.tls.yaml")?)?;
    let services = base
        .get("services")
        .and_then(Value::as_object)
        .context("compose.yaml has no services")?;
    let overrides = tls
        .get("services")
        .and_then(Value::as_object)
        .context("compose.tls.yaml has no services")?;
    let names: BTreeSet<&String> = services.keys().collect();
    assert_eq!(
        names,
        overrides.keys().collect(),
        "every service and no other"
    );
    let mut problems = Vec::new();
    for (name, service) in overrides {
        let role = services[name]
            .get("command")
            .and_then(|c| c.get(0))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let known = envs_of(&role)?;
        let env = service.get("environment").cloned().unwrap_or(Value::Null);
        let mut wanted = vec![
            ("SWITCHYARD_TLS_CA", "ca.pem".to_owned()),
            ("SWITCHYARD_TLS_CERT", format!("{name}.pem")),
            ("SWITCHYARD_TLS_KEY", format!("{name}.key")),
        ];
        if role != "node-agent" {
            wanted.push(("SWITCHYARD_HTTPS_CERT", format!("{name}.pem")));
            wanted.push(("SWITCHYARD_HTTPS_KEY", format!("{name}.key")));
        }
        for (var, file) in wanted {
            let want = format!("/etc/switchyard/tls/{file}");
            if env.get(var).and_then(Value::as_str) != Some(want.as_str()) {
                problems.push(format!("{name}: {var} is not {want}"));
            }
            if !known.contains(var) {
                problems.push(format!("`switchyard {role}` reads no {var}"));
            }
        }
        let mounted = service
            .get("volumes")
            .map(Value::to_string)
            .unwrap_or_default();
        if !mounted.contains("./certs:/etc/switchyard/tls:ro") {
            problems.push(format!("{name} does not mount ./certs: {mounted}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
