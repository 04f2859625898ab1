//! The Helm chart: lint, render with each value set, and check what an install depends on.
//!
//! Needs helm (`.ci/install-helm`); fails, naming that script, when it is missing.

use serde_json::Value;
use switchyard_tests::deploy::{
    all_of, args, at, container, data_entry, env_entry, env_value, find, flags_of, helm_run,
    render, render_ci, str_at,
};

const VALUE_SETS: [&str; 5] = ["dev", "ha", "agent-hostnetwork", "existing-secret", "tls"];
const STS: &str = "sy-switchyard-control-plane";
const EDGE: &str = "sy-switchyard-edge";
const AGENT: &str = "sy-switchyard-node-agent";

fn int(value: &Value, path: &str) -> Option<i64> {
    at(value, path)?.as_i64()
}

fn flag(value: &Value, path: &str) -> Option<bool> {
    at(value, path)?.as_bool()
}

#[test]
fn lint_strict_passes_with_every_value_set() -> anyhow::Result<()> {
    let mut sets = vec![None];
    sets.extend(VALUE_SETS.map(Some));
    for set in sets {
        let file = set.map(|s| format!("ci/{s}-values.yaml"));
        let mut cmd = vec!["lint", "--strict", "."];
        if let Some(file) = &file {
            cmd.extend(["-f", file]);
        }
        let out = helm_run(&cmd)?;
        assert!(
            out.status.success(),
            "helm {} failed:\n{}{}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn defaults_run_three_voters_with_a_majority_budget_and_volumes() -> anyhow::Result<()> {
    let docs = render(&[])?;
    let sts = find(&docs, "StatefulSet", STS)?;
    assert_eq!(int(sts, "spec.replicas"), Some(3));
    assert_eq!(str_at(sts, "spec.podManagementPolicy"), Some("Parallel"));
    assert_eq!(
        str_at(sts, "spec.volumeClaimTemplates.0.metadata.name"),
        Some("data")
    );
    assert_eq!(
        str_at(
            sts,
            "spec.volumeClaimTemplates.0.spec.resources.requests.storage"
        ),
        Some("2Gi")
    );
    let pdb = find(&docs, "PodDisruptionBudget", STS)?;
    assert_eq!(int(pdb, "spec.minAvailable"), Some(2), "a majority of 3");

    // The headless Service the StatefulSet names publishes voters before they are ready.
    let headless_name = str_at(sts, "spec.serviceName").unwrap_or_default();
    let headless = find(&docs, "Service", headless_name)?;
    assert_eq!(str_at(headless, "spec.clusterIP"), Some("None"));
    assert_eq!(flag(headless, "spec.publishNotReadyAddresses"), Some(true));

    // Edges: two replicas, a budget, readiness on holding a table.
    let edge = find(&docs, "Deployment", EDGE)?;
    assert_eq!(int(edge, "spec.replicas"), Some(2));
    assert_eq!(
        int(
            find(&docs, "PodDisruptionBudget", EDGE)?,
            "spec.minAvailable"
        ),
        Some(1)
    );
    assert!(all_of(&docs, "HorizontalPodAutoscaler").is_empty());
    assert!(all_of(&docs, "Ingress").is_empty());
    assert!(all_of(&docs, "ServiceMonitor").is_empty());
    let agent = find(&docs, "DaemonSet", AGENT)?;
    assert_eq!(flag(agent, "spec.template.spec.hostNetwork"), None);
    Ok(())
}

#[test]
fn bootstrap_is_wired_from_the_ordinal() -> anyhow::Result<()> {
    let docs = render(&[])?;
    let sts = find(&docs, "StatefulSet", STS)?;
    let cp = container(sts)?;
    let command: Vec<&str> = at(cp, "command")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        command,
        ["/bin/sh", "/etc/switchyard/start/start-control-plane.sh"]
    );
    assert_eq!(env_value(cp, "STATEFULSET_NAME"), Some(STS));
    let domain = env_value(cp, "PEERS_DOMAIN").unwrap_or_default();
    let headless = str_at(sts, "spec.serviceName").unwrap_or_default();
    assert_eq!(domain, format!("{headless}.llm.svc.cluster.local"));
    assert_eq!(
        str_at(
            env_entry(cp, "POD_NAME").unwrap_or(&Value::Null),
            "valueFrom.fieldRef.fieldPath"
        ),
        Some("metadata.name")
    );
    assert_eq!(env_value(cp, "GRPC_PORT"), Some("7700"));
    assert_eq!(env_value(cp, "DATA_DIR"), Some("/data"));

    let config = find(&docs, "ConfigMap", "sy-switchyard-config")?;
    let script = data_entry(config, "start-control-plane.sh").unwrap_or_default();
    for needle in [
        "ordinal=\"${POD_NAME##*-}\"",
        "SWITCHYARD_NODE_ID=\"$((ordinal + 1))\"",
        "voter_host() { echo \"${STATEFULSET_NAME}-$1.${PEERS_DOMAIN}\"; }",
        "SWITCHYARD_ADVERTISE=\"$(voter_host \"$ordinal\"):${GRPC_PORT}\"",
        "set -- --bootstrap",
        "set -- --join \"http://$(voter_host 0):${GRPC_PORT}\"",
        "exec \"${SWITCHYARD_BIN:-switchyard}\" control-plane",
    ] {
        assert!(
            script.contains(needle),
            "start script lacks {needle:?}:\n{script}"
        );
    }
    // The script is mounted where the command runs it from.
    let volumes = at(sts, "spec.template.spec.volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let start = volumes
        .iter()
        .find(|v| str_at(v, "name") == Some("start"))
        .and_then(|v| str_at(v, "configMap.name"));
    assert_eq!(start, Some("sy-switchyard-config"));
    Ok(())
}

#[test]
fn probes_and_ports_match_what_each_role_serves() -> anyhow::Result<()> {
    let docs = render(&[])?;
    let cp = container(find(&docs, "StatefulSet", STS)?)?;
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            int(cp, &format!("{probe}.grpc.port")),
            Some(7700),
            "{probe}"
        );
    }
    assert_eq!(int(cp, "ports.0.containerPort"), Some(7700));
    assert_eq!(int(cp, "ports.1.containerPort"), Some(7701));

    let edge = container(find(&docs, "Deployment", EDGE)?)?;
    assert_eq!(
        str_at(edge, "readinessProbe.httpGet.path"),
        Some("/health/readiness")
    );
    assert_eq!(
        str_at(edge, "livenessProbe.httpGet.path"),
        Some("/health/liveliness")
    );
    assert_eq!(int(edge, "ports.0.containerPort"), Some(8080));
    let edge_args = args(edge);
    assert_eq!(edge_args.first().map(String::as_str), Some("edge"));
    assert!(
        edge_args
            .windows(2)
            .any(|w| w[0] == "--listen" && w[1] == "0.0.0.0:8080")
    );
    // Edges get every voter by its own name, so they can move off one that loses the leader.
    let voters: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "http://sy-switchyard-control-plane-{i}.sy-switchyard-control-plane-peers.llm.svc:7700"
            )
        })
        .collect();
    assert!(
        edge_args
            .windows(2)
            .any(|w| w[0] == "--control-plane" && w[1] == voters.join(",")),
        "{edge_args:?}"
    );
    let edge_svc = find(&docs, "Service", EDGE)?;
    assert_eq!(str_at(edge_svc, "spec.ports.0.targetPort"), Some("http"));

    // The client Service agents and edges dial selects the voters on the gRPC port.
    let cp_svc = find(&docs, "Service", STS)?;
    assert_eq!(int(cp_svc, "spec.ports.0.port"), Some(7700));
    let selector = at(cp_svc, "spec.selector").cloned().unwrap_or(Value::Null);
    assert_eq!(
        selector
            .get("app.kubernetes.io/component")
            .and_then(Value::as_str),
        Some("control-plane")
    );
    Ok(())
}

#[test]
fn every_workload_is_non_root_with_a_read_only_root() -> anyhow::Result<()> {
    for set in [None, Some("ha"), Some("agent-hostnetwork")] {
        let docs = match set {
            Some(set) => render_ci(set)?,
            None => render(&[])?,
        };
        let mut workloads = all_of(&docs, "StatefulSet");
        workloads.extend(all_of(&docs, "Deployment"));
        workloads.extend(all_of(&docs, "DaemonSet"));
        assert_eq!(workloads.len(), 3, "{set:?}");
        for workload in workloads {
            let name = str_at(workload, "metadata.name").unwrap_or("?");
            let pod = at(workload, "spec.template.spec").unwrap_or(&Value::Null);
            assert_eq!(
                flag(pod, "securityContext.runAsNonRoot"),
                Some(true),
                "{name}"
            );
            assert_ne!(int(pod, "securityContext.runAsUser"), Some(0), "{name}");
            assert_eq!(
                str_at(pod, "securityContext.seccompProfile.type"),
                Some("RuntimeDefault"),
                "{name}"
            );
            assert_eq!(
                flag(pod, "automountServiceAccountToken"),
                Some(false),
                "{name}"
            );
            let c = container(workload)?;
            assert_eq!(
                flag(c, "securityContext.readOnlyRootFilesystem"),
                Some(true),
                "{name}"
            );
            assert_eq!(
                flag(c, "securityContext.allowPrivilegeEscalation"),
                Some(false),
                "{name}"
            );
            assert_eq!(
                str_at(c, "securityContext.capabilities.drop.0"),
                Some("ALL"),
                "{name}"
            );
            assert!(
                at(c, "resources.requests").is_some(),
                "{name} has no requests"
            );
        }
    }
    Ok(())
}

#[test]
fn tokens_come_from_the_chart_secret_by_default() -> anyhow::Result<()> {
    let docs = render(&[])?;
    let secret = find(&docs, "Secret", "sy-switchyard-tokens")?;
    for key in ["join-token", "admin-token"] {
        let value = str_at(secret, &format!("data.{key}")).unwrap_or_default();
        assert!(value.len() >= 40, "{key} is generated and long: {value:?}");
    }
    let cp = container(find(&docs, "StatefulSet", STS)?)?;
    let agent = container(find(&docs, "DaemonSet", AGENT)?)?;
    for (who, c) in [("control plane", cp), ("agent", agent)] {
        let join = env_entry(c, "SWITCHYARD_JOIN_TOKEN").unwrap_or(&Value::Null);
        assert_eq!(
            str_at(join, "valueFrom.secretKeyRef.name"),
            Some("sy-switchyard-tokens"),
            "{who}"
        );
        assert_eq!(
            str_at(join, "valueFrom.secretKeyRef.key"),
            Some("join-token"),
            "{who}"
        );
    }
    let admin = env_entry(cp, "SWITCHYARD_ADMIN_TOKENS").unwrap_or(&Value::Null);
    assert_eq!(
        str_at(admin, "valueFrom.secretKeyRef.key"),
        Some("admin-token")
    );
    // One cluster key for every voter, so each can read what another sealed.
    let cluster_key = env_entry(cp, "SWITCHYARD_CLUSTER_KEY").unwrap_or(&Value::Null);
    assert_eq!(
        str_at(cluster_key, "valueFrom.secretKeyRef.key"),
        Some("cluster-key")
    );
    assert_eq!(
        str_at(secret, "data.cluster-key").map(str::len),
        Some(60),
        "43 base64url characters, base64-encoded again"
    );
    assert!(env_entry(agent, "SWITCHYARD_CLUSTER_KEY").is_none());
    // Without provider keys nobody gets an envFrom.
    assert!(at(cp, "envFrom").is_none());

    // Given tokens are used as given.
    let docs = render(&["--set", "secrets.joinToken=0123456789abcdef-join"])?;
    let secret = find(&docs, "Secret", "sy-switchyard-tokens")?;
    assert_eq!(
        str_at(secret, "data.join-token"),
        Some("MDEyMzQ1Njc4OWFiY2RlZi1qb2lu")
    );
    Ok(())
}

#[test]
fn existing_secrets_replace_the_charts_own() -> anyhow::Result<()> {
    let docs = render_ci("existing-secret")?;
    assert!(
        all_of(&docs, "Secret").is_empty(),
        "no Secret is rendered when existing ones are named"
    );
    let cp = container(find(&docs, "StatefulSet", STS)?)?;
    let agent = container(find(&docs, "DaemonSet", AGENT)?)?;
    let edge = container(find(&docs, "Deployment", EDGE)?)?;
    for c in [cp, agent] {
        let join = env_entry(c, "SWITCHYARD_JOIN_TOKEN").unwrap_or(&Value::Null);
        assert_eq!(
            str_at(join, "valueFrom.secretKeyRef.name"),
            Some("switchyard-tokens")
        );
        assert_eq!(str_at(join, "valueFrom.secretKeyRef.key"), Some("token"));
    }
    let admin = env_entry(cp, "SWITCHYARD_ADMIN_TOKENS").unwrap_or(&Value::Null);
    assert_eq!(str_at(admin, "valueFrom.secretKeyRef.key"), Some("admin"));
    let cluster_key = env_entry(cp, "SWITCHYARD_CLUSTER_KEY").unwrap_or(&Value::Null);
    assert_eq!(
        str_at(cluster_key, "valueFrom.secretKeyRef.key"),
        Some("sealing-key")
    );
    for c in [cp, edge] {
        assert_eq!(
            str_at(c, "envFrom.0.secretRef.name"),
            Some("switchyard-provider-keys")
        );
    }
    assert!(
        at(agent, "envFrom").is_none(),
        "agents never see provider keys"
    );
    Ok(())
}

#[test]
fn dev_values_run_one_voter_without_budgets_or_volumes() -> anyhow::Result<()> {
    let docs = render_ci("dev")?;
    let sts = find(&docs, "StatefulSet", STS)?;
    assert_eq!(int(sts, "spec.replicas"), Some(1));
    assert!(at(sts, "spec.volumeClaimTemplates").is_none());
    let volumes = at(sts, "spec.template.spec.volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(
        volumes
            .iter()
            .any(|v| str_at(v, "name") == Some("data") && at(v, "emptyDir").is_some())
    );
    // A budget on one voter or one edge would block every node drain.
    assert!(all_of(&docs, "PodDisruptionBudget").is_empty());
    assert!(all_of(&docs, "DaemonSet").is_empty());
    assert_eq!(
        int(find(&docs, "Deployment", EDGE)?, "spec.replicas"),
        Some(1)
    );
    Ok(())
}

#[test]
fn ha_values_scale_out_and_expose() -> anyhow::Result<()> {
    let docs = render_ci("ha")?;
    let sts = find(&docs, "StatefulSet", STS)?;
    assert_eq!(int(sts, "spec.replicas"), Some(5));
    assert_eq!(
        int(
            find(&docs, "PodDisruptionBudget", STS)?,
            "spec.minAvailable"
        ),
        Some(3),
        "a majority of 5"
    );
    assert_eq!(
        str_at(sts, "spec.volumeClaimTemplates.0.spec.storageClassName"),
        Some("fast-ssd")
    );
    let edge = find(&docs, "Deployment", EDGE)?;
    assert!(
        at(edge, "spec.replicas").is_none(),
        "the autoscaler owns the replica count"
    );
    let hpa = find(&docs, "HorizontalPodAutoscaler", EDGE)?;
    assert_eq!(int(hpa, "spec.minReplicas"), Some(3));
    assert_eq!(int(hpa, "spec.maxReplicas"), Some(12));
    assert_eq!(str_at(hpa, "spec.scaleTargetRef.name"), Some(EDGE));
    assert_eq!(
        int(
            find(&docs, "PodDisruptionBudget", EDGE)?,
            "spec.minAvailable"
        ),
        Some(2)
    );
    let ingress = find(&docs, "Ingress", EDGE)?;
    assert_eq!(
        str_at(ingress, "spec.rules.0.host"),
        Some("llm.example.com")
    );
    assert_eq!(
        str_at(ingress, "spec.rules.0.http.paths.0.backend.service.name"),
        Some(EDGE)
    );
    assert_eq!(all_of(&docs, "ServiceMonitor").len(), 2);

    // Provider keys: a Secret, given to voters and edges as environment.
    let keys = find(&docs, "Secret", "sy-switchyard-provider-keys")?;
    assert!(str_at(keys, "data.OPENAI_API_KEY").is_some());
    for c in [container(sts)?, container(edge)?] {
        assert_eq!(
            str_at(c, "envFrom.0.secretRef.name"),
            Some("sy-switchyard-provider-keys")
        );
    }
    // config.yaml reaches the voters and rolls them when it changes.
    let config = find(&docs, "ConfigMap", "sy-switchyard-config")?;
    let yaml = data_entry(config, "config.yaml").unwrap_or_default();
    assert!(yaml.contains("model_name: gpt-4o-mini"), "{yaml}");
    let cp = container(sts)?;
    assert_eq!(
        env_value(cp, "CONFIG_FILE"),
        Some("/etc/switchyard/config/config.yaml")
    );
    assert!(str_at(sts, "spec.template.metadata.annotations.checksum/config").is_some());
    Ok(())
}

#[test]
fn agent_on_host_network_targets_gpu_nodes() -> anyhow::Result<()> {
    let docs = render_ci("agent-hostnetwork")?;
    let ds = find(&docs, "DaemonSet", AGENT)?;
    let pod = at(ds, "spec.template.spec").unwrap_or(&Value::Null);
    assert_eq!(flag(pod, "hostNetwork"), Some(true));
    assert_eq!(str_at(pod, "dnsPolicy"), Some("ClusterFirstWithHostNet"));
    let selector = at(pod, "nodeSelector").cloned().unwrap_or(Value::Null);
    assert_eq!(
        selector
            .get("nvidia.com/gpu.present")
            .and_then(Value::as_str),
        Some("true")
    );
    assert_eq!(str_at(pod, "tolerations.0.key"), Some("nvidia.com/gpu"));
    let c = container(ds)?;
    let agent_args = args(c);
    assert_eq!(agent_args.first().map(String::as_str), Some("node-agent"));
    assert!(
        agent_args
            .windows(2)
            .any(|w| w[0] == "--probe" && w[1] == "ollama=11434")
    );
    // On the host network the agent already sees the host; only the listed peers are added.
    assert_eq!(
        env_value(c, "LLM_PROXY_DISCOVERY_PEERS"),
        Some("dgx-02.lan,10.0.0.7:8001")
    );
    assert_eq!(
        str_at(
            env_entry(c, "SWITCHYARD_NODE_NAME").unwrap_or(&Value::Null),
            "valueFrom.fieldRef.fieldPath"
        ),
        Some("spec.nodeName")
    );

    // Off the host network, the agent probes the node's IP instead.
    let docs = render(&[])?;
    let c = container(find(&docs, "DaemonSet", AGENT)?)?;
    assert_eq!(
        env_value(c, "LLM_PROXY_DISCOVERY_PEERS"),
        Some("$(HOST_IP)")
    );
    Ok(())
}

#[test]
fn the_schema_rejects_bad_values_naming_the_field() -> anyhow::Result<()> {
    switchyard_tests::deploy::helm()?;
    let cases = [
        ("controlPlane.replicas=2", "controlPlane.replicas"),
        ("controlPlane.replicas=4", "controlPlane.replicas"),
        ("edge.port=0", "edge.port"),
        ("controlPlane.grpcPort=70000", "controlPlane.grpcPort"),
        ("nodeAgnet.enabled=true", "nodeAgnet"),
        ("secrets.joinToken=short", "secrets.joinToken"),
        ("secrets.clusterKey=short", "secrets.clusterKey"),
        ("nodeAgent.probes[0]=tgi=8080", "nodeAgent.probes.0"),
        ("edge.service.type=Bogus", "edge.service.type"),
        ("image.pullPolicy=Sometimes", "image.pullPolicy"),
        (
            "metrics.serviceMonitor.interval=often",
            "metrics.serviceMonitor.interval",
        ),
    ];
    for (set, field) in cases {
        let err = match render(&["--set", set]) {
            Ok(_) => panic!("--set {set} rendered; the schema should refuse it"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(field),
            "--set {set}: error does not name {field}: {err}"
        );
    }
    // And the good neighbours of those values pass.
    for set in [
        "controlPlane.replicas=5",
        "controlPlane.replicas=1",
        "nodeAgent.probes[0]=vllm=gpu01:8001",
    ] {
        render(&["--set", set])?;
    }
    Ok(())
}

#[test]
fn notes_show_the_first_curl() -> anyhow::Result<()> {
    // `helm install --dry-run` needs a cluster, so NOTES.txt is rendered as a manifest of a copy.
    let notes = render_notes(&[])?;
    for needle in [
        "port-forward service/sy-switchyard-edge 8080:80",
        "curl -s $EDGE/v1/models",
        "/v1/chat/completions",
        "get secret sy-switchyard-tokens",
        "switchyard doctor --control-plane",
    ] {
        assert!(notes.contains(needle), "NOTES lack {needle:?}:\n{notes}");
    }
    let notes = render_notes(&["-f", "ci/ha-values.yaml"])?;
    assert!(notes.contains("EDGE=https://llm.example.com"), "{notes}");
    Ok(())
}

fn render_notes(extra: &[&str]) -> anyhow::Result<String> {
    let copy = tempfile::tempdir()?;
    let chart = switchyard_tests::deploy::chart_dir();
    copy_dir(&chart, copy.path())?;
    let notes = std::fs::read_to_string(chart.join("templates/NOTES.txt"))?;
    let indented: String = notes
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                "\n".to_owned()
            } else {
                format!("  {l}\n")
            }
        })
        .collect();
    std::fs::write(
        copy.path().join("templates/notes-check.yaml"),
        format!("notes: |\n{indented}"),
    )?;
    let mut args = vec![
        "template",
        "sy",
        ".",
        "-n",
        "llm",
        "--show-only",
        "templates/notes-check.yaml",
    ];
    args.extend_from_slice(extra);
    let helm = switchyard_tests::deploy::helm()?;
    let out = std::process::Command::new(helm)
        .args(&args)
        .current_dir(copy.path())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = switchyard_tests::deploy::parse_documents(&String::from_utf8_lossy(&out.stdout))?;
    Ok(docs
        .first()
        .and_then(|d| str_at(d, "notes"))
        .unwrap_or_default()
        .to_owned())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The hosts in a comma-separated list of `scheme://host:port` URLs.
fn url_hosts(urls: &str) -> Vec<String> {
    urls.split(',')
        .filter_map(|u| {
            u.split("://")
                .nth(1)?
                .rsplit_once(':')
                .map(|(h, _)| h.to_owned())
        })
        .collect()
}

fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone())
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn tls_mounts_one_certificate_into_every_role_and_probes_through_doctor() -> anyhow::Result<()> {
    let docs = render_ci("tls")?;
    let cert = find(&docs, "Certificate", "sy-switchyard-tls")?;
    let secret = str_at(cert, "spec.secretName")
        .unwrap_or_default()
        .to_owned();
    assert_eq!(str_at(cert, "spec.issuerRef.name"), Some("switchyard-ca"));
    let usages = strings(at(cert, "spec.usages"));
    for usage in ["server auth", "client auth"] {
        assert!(usages.iter().any(|u| u == usage), "{usages:?}");
    }
    let names = strings(at(cert, "spec.dnsNames"));
    assert!(
        names.iter().any(|n| n == "llm.tail1234.ts.net"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "localhost"), "{names:?}");

    let sts = find(&docs, "StatefulSet", STS)?;
    let edge = find(&docs, "Deployment", EDGE)?;
    let agent = find(&docs, "DaemonSet", AGENT)?;
    for (role, workload, https) in [
        ("voter", sts, true),
        ("edge", edge, true),
        ("agent", agent, false),
    ] {
        let c = container(workload)?;
        for (var, file) in [
            ("SWITCHYARD_TLS_CA", "ca.crt"),
            ("SWITCHYARD_TLS_CERT", "tls.crt"),
            ("SWITCHYARD_TLS_KEY", "tls.key"),
        ] {
            let want = format!("/etc/switchyard/tls/{file}");
            assert_eq!(env_value(c, var), Some(want.as_str()), "{role} {var}");
        }
        let serves = env_value(c, "SWITCHYARD_HTTPS_CERT");
        assert_eq!(serves.is_some(), https, "{role} HTTPS");
        let mounts = at(c, "volumeMounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mount = mounts.iter().find(|m| str_at(m, "name") == Some("tls"));
        assert_eq!(
            mount.and_then(|m| str_at(m, "mountPath")),
            Some("/etc/switchyard/tls"),
            "{role}"
        );
        let volumes = at(workload, "spec.template.spec.volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let volume = volumes.iter().find(|v| str_at(v, "name") == Some("tls"));
        assert_eq!(
            volume.and_then(|v| str_at(v, "secret.secretName")),
            Some(secret.as_str()),
            "{role} mounts the Secret the Certificate fills"
        );
    }

    // Every name a role dials a voter by is in the certificate, or its TLS check fails.
    let mut dialled =
        url_hosts(&flag_value(&args(container(edge)?), "--control-plane").unwrap_or_default());
    assert_eq!(dialled.len(), 3, "{dialled:?}");
    dialled.extend(url_hosts(
        &flag_value(&args(container(agent)?), "--control-plane").unwrap_or_default(),
    ));
    let config = find(&docs, "ConfigMap", "sy-switchyard-config")?;
    let script = data_entry(config, "start-control-plane.sh").unwrap_or_default();
    assert!(
        script.contains("${STATEFULSET_NAME}-$1.${PEERS_DOMAIN}"),
        "{script}"
    );
    let peers = env_value(container(sts)?, "PEERS_DOMAIN").unwrap_or_default();
    dialled.extend((0..3).map(|i| format!("{STS}-{i}.{peers}")));
    for host in &dialled {
        assert!(
            names.contains(host),
            "{host} is not in the certificate: {names:?}"
        );
    }

    // The kubelet's gRPC probe speaks no TLS: voters are probed by doctor with the pod's files.
    let cp = container(sts)?;
    let doctor = flags_of("doctor")?;
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert!(at(cp, &format!("{probe}.grpc")).is_none(), "{probe}");
        let command = strings(at(cp, &format!("{probe}.exec.command")));
        assert_eq!(
            command.get(..2),
            Some(&["switchyard".to_owned(), "doctor".to_owned()][..]),
            "{probe}"
        );
        assert_eq!(
            flag_value(&command, "--tls-cert").as_deref(),
            Some("/etc/switchyard/tls/tls.crt")
        );
        assert_eq!(
            flag_value(&command, "--control-plane").as_deref(),
            Some("https://localhost:7700")
        );
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            assert!(doctor.contains(flag), "doctor has no {flag}");
        }
    }
    // Edges stay on httpGet (they serve without a control plane), now over HTTPS.
    let e = container(edge)?;
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            str_at(e, &format!("{probe}.httpGet.scheme")),
            Some("HTTPS"),
            "{probe}"
        );
    }
    for monitor in all_of(&docs, "ServiceMonitor") {
        assert_eq!(str_at(monitor, "spec.endpoints.0.scheme"), Some("https"));
        assert_eq!(
            str_at(monitor, "spec.endpoints.0.tlsConfig.ca.secret.name"),
            Some(secret.as_str())
        );
    }

    // An existing Secret instead of cert-manager; and TLS with neither is refused.
    let docs = render(&[
        "--set",
        "tls.enabled=true",
        "--set",
        "tls.existingSecret=mine",
        "--set",
        "tls.edgeHttps=false",
    ])?;
    assert!(all_of(&docs, "Certificate").is_empty());
    let e = container(find(&docs, "Deployment", EDGE)?)?;
    assert_eq!(env_value(e, "SWITCHYARD_HTTPS_CERT"), None);
    assert_eq!(str_at(e, "readinessProbe.httpGet.scheme"), Some("HTTP"));
    let volumes = at(
        find(&docs, "DaemonSet", AGENT)?,
        "spec.template.spec.volumes",
    )
    .cloned()
    .unwrap_or(Value::Null);
    assert!(volumes.to_string().contains("\"mine\""), "{volumes}");
    let refused = render(&["--set", "tls.enabled=true"])
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("tls.existingSecret"), "{refused}");

    // Off by default: nothing of it renders.
    let docs = render(&[])?;
    assert!(all_of(&docs, "Certificate").is_empty());
    let cp = container(find(&docs, "StatefulSet", STS)?)?;
    assert_eq!(env_value(cp, "SWITCHYARD_TLS_CA"), None);
    assert_eq!(int(cp, "readinessProbe.grpc.port"), Some(7700));
    Ok(())
}
