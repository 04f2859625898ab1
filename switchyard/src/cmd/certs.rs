//! `switchyard certs init`: a private CA and one certificate per node for mutual TLS between
//! edges, agents and control-plane voters.
//!
//! Files in the output directory: `ca.pem` and `ca.key` (the CA), and `<node>.pem` /
//! `<node>.key` per node. Keys are written with mode 0600, certificates 0644. A CA already in
//! the directory is reused, so nodes can be added later; its subject is derived from its key,
//! which is why `ca.key` alone is enough to sign more. Existing node files are only replaced
//! with `--force`.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// CA certificates last this many days.
const CA_DAYS: u32 = 3650;

/// `switchyard certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    /// What to do.
    pub cmd: CertsCmd,
}

impl super::Run for CertsArgs {
    async fn run(self, _: super::Shutdown) -> anyhow::Result<()> {
        match self.cmd {
            CertsCmd::Init(args) => init(&args, &mut std::io::stdout().lock()),
        }
    }
}

/// `switchyard certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCmd {
    /// Create a CA (or reuse the one in --dir) and a certificate per --node.
    Init(InitArgs),
}

/// `switchyard certs init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write into (created if missing).
    #[arg(long, default_value = "switchyard-certs")]
    pub dir: PathBuf,
    /// A node to make a certificate for (repeatable); its name is also a DNS name in the
    /// certificate when it is a valid one.
    #[arg(long = "node", value_name = "NAME", required = true)]
    pub nodes: Vec<String>,
    /// Another name or address the nodes are reached at: a DNS name (`cp1.lan`, a Tailscale
    /// MagicDNS name like `gpu01.tail1234.ts.net`) or an IP (`10.0.0.5`, `100.101.102.103`).
    /// `NODE=VALUE` adds it to that node only; plain `VALUE` to every node. Repeatable.
    #[arg(long = "san", value_name = "[NODE=]NAME|IP")]
    pub sans: Vec<String>,
    /// Leave out `localhost`, `127.0.0.1` and `::1`, which every node gets by default.
    #[arg(long)]
    pub no_loopback: bool,
    /// Days the node certificates are valid.
    #[arg(long, default_value_t = 825)]
    pub days: u32,
    /// Replace node files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// What one node's certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// The node name (file stem and common name).
    pub name: String,
    /// Subject alternative names, in order, without duplicates.
    pub sans: Vec<San>,
}

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(name) => write!(f, "DNS:{name}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// Whether `name` is a DNS name a certificate may carry (letters, digits, `-`, dots; an
/// optional leading `*.`).
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_san(text: &str) -> anyhow::Result<San> {
    let text = text.trim();
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(San::Ip(ip));
    }
    if is_dns_name(text) {
        return Ok(San::Dns(text.to_ascii_lowercase()));
    }
    bail!("--san {text:?} is neither an IP address nor a DNS name")
}

/// Works out every node's names from the flags; pure, so it is tested on its own.
pub fn plan(args: &InitArgs) -> anyhow::Result<Vec<NodePlan>> {
    let mut plans: Vec<NodePlan> = Vec::new();
    for name in &args.nodes {
        let valid_file = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !name.starts_with('.');
        if !valid_file {
            bail!("--node {name:?}: use letters, digits, `-`, `_` and `.` only");
        }
        if plans.iter().any(|p| &p.name == name) {
            bail!("--node {name:?} is given twice");
        }
        let mut sans = Vec::new();
        if is_dns_name(name) {
            sans.push(San::Dns(name.to_ascii_lowercase()));
        }
        plans.push(NodePlan {
            name: name.clone(),
            sans,
        });
    }
    for text in &args.sans {
        let (node, value) = match text.split_once('=') {
            Some((node, value)) => (Some(node), value),
            None => (None, text.as_str()),
        };
        let san = parse_san(value)?;
        let mut matched = false;
        for p in plans
            .iter_mut()
            .filter(|p| node.is_none_or(|n| n == p.name))
        {
            matched = true;
            if !p.sans.contains(&san) {
                p.sans.push(san.clone());
            }
        }
        if !matched {
            bail!("--san {text:?} names a node that is not given with --node");
        }
    }
    if !args.no_loopback {
        for p in &mut plans {
            for san in [
                San::Dns("localhost".into()),
                San::Ip(IpAddr::from([127, 0, 0, 1])),
                San::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ] {
                if !p.sans.contains(&san) {
                    p.sans.push(san);
                }
            }
        }
    }
    for p in &plans {
        if p.sans.is_empty() {
            bail!(
                "--node {:?} has no DNS name or address; add one with --san {}=NAME",
                p.name,
                p.name
            );
        }
    }
    Ok(plans)
}

/// Runs `certs init`, reporting what it wrote to `out`.
pub fn init(args: &InitArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let plans = plan(args)?;
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if !args.force {
        for p in &plans {
            for file in [
                dir.join(format!("{}.pem", p.name)),
                dir.join(format!("{}.key", p.name)),
            ] {
                if file.exists() {
                    bail!(
                        "{} exists; pass --force to replace it (nothing was written)",
                        file.display()
                    );
                }
            }
        }
    }
    let now = unix_now();
    let (issuer, reused) = ca(dir, now)?;
    if reused {
        writeln!(out, "reusing the CA in {}", dir.join("ca.pem").display())?;
    } else {
        writeln!(
            out,
            "wrote {} (CA certificate)",
            dir.join("ca.pem").display()
        )?;
        writeln!(
            out,
            "wrote {} (CA key, mode 0600)",
            dir.join("ca.key").display()
        )?;
    }
    for p in &plans {
        let key = KeyPair::generate().context("generating a node key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, &p.name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Switchyard");
        params.subject_alt_names = p
            .sans
            .iter()
            .map(|s| match s {
                San::Dns(name) => name
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .with_context(|| format!("{name:?} is not a DNS name")),
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            })
            .collect::<anyhow::Result<_>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every node both serves (voters) and dials (edges, agents, voters to peers).
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        // From yesterday, so a node whose clock is a little behind accepts it at once.
        set_validity(
            &mut params,
            now - 86_400,
            now + i64::from(args.days) * 86_400,
        );
        let cert = params
            .signed_by(&key, &issuer)
            .with_context(|| format!("signing the certificate of {}", p.name))?;
        let cert_path = dir.join(format!("{}.pem", p.name));
        let key_path = dir.join(format!("{}.key", p.name));
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
        let names: Vec<String> = p.sans.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "wrote {} and {} for {} ({})",
            cert_path.display(),
            key_path.display(),
            p.name,
            names.join(", ")
        )?;
    }
    writeln!(
        out,
        "give each node ca.pem, its own .pem and .key: --tls-ca, --tls-cert, --tls-key"
    )?;
    Ok(())
}

/// The CA in `dir`, created when missing; `true` when it already existed.
fn ca(dir: &Path, now: i64) -> anyhow::Result<(Issuer<'static, KeyPair>, bool)> {
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca.key");
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let pem = std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?;
            let key = KeyPair::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM private key", key_path.display()))?;
            let params = ca_params(&key, now);
            Ok((Issuer::new(params, key), true))
        }
        (false, false) => {
            let key = KeyPair::generate().context("generating the CA key")?;
            let params = ca_params(&key, now);
            let cert = params
                .self_signed(&key)
                .context("self-signing the CA certificate")?;
            write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
            Ok((Issuer::new(params, key), false))
        }
        (true, false) => bail!(
            "{} exists without {}; restore the key or remove both to start a new CA",
            cert_path.display(),
            key_path.display()
        ),
        (false, true) => bail!(
            "{} exists without {}; restore the certificate or remove both to start a new CA",
            key_path.display(),
            cert_path.display()
        ),
    }
}

/// The CA's parameters. The subject carries a fingerprint of the CA's public key, so it is
/// the same every time it is rebuilt from `ca.key` and distinct from any other CA's.
fn ca_params(key: &KeyPair, now: i64) -> CertificateParams {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key_raw());
    let id: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Switchyard CA {id}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Switchyard");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, now - 86_400, now + i64::from(CA_DAYS) * 86_400);
    params
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Sets `params`' validity to the UTC days of Unix times `from` and `until` (whole days).
fn set_validity(params: &mut CertificateParams, from: i64, until: i64) {
    let (y, m, d) = civil_from_days(from.div_euclid(86_400));
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil_from_days(until.div_euclid(86_400));
    params.not_after = rcgen::date_time_ymd(y, m, d);
}

/// Year, month and day of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        i32::try_from(y).unwrap_or(i32::MAX),
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    )
}

/// Writes `bytes` to `path` with `mode`, replacing it.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // `mode` applies only to new files; an overwritten one gets it here.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: &[&str], sans: &[&str]) -> InitArgs {
        InitArgs {
            dir: PathBuf::from("unused"),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            no_loopback: true,
            days: 825,
            force: false,
        }
    }

    #[test]
    fn sans_go_to_every_node_or_the_named_one() {
        let plans = plan(&args(
            &["cp1", "gpu01"],
            &[
                "cp.lan",
                "gpu01=gpu01.tail1234.ts.net",
                "gpu01=100.101.102.103",
                "cp1=[fd7a:115c:a1e0::1]",
                "cp.lan",
            ],
        ))
        .unwrap();
        let shown: Vec<(String, Vec<String>)> = plans
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.sans.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "cp1".to_string(),
                    vec![
                        "DNS:cp1".to_string(),
                        "DNS:cp.lan".into(),
                        "IP:fd7a:115c:a1e0::1".into()
                    ]
                ),
                (
                    "gpu01".to_string(),
                    vec![
                        "DNS:gpu01".to_string(),
                        "DNS:cp.lan".into(),
                        "DNS:gpu01.tail1234.ts.net".into(),
                        "IP:100.101.102.103".into()
                    ]
                ),
            ]
        );
    }

    #[test]
    fn loopback_names_are_added_unless_turned_off() {
        let mut a = args(&["edge"], &[]);
        a.no_loopback = false;
        let p = &plan(&a).unwrap()[0];
        assert!(p.sans.contains(&San::Ip(IpAddr::from([127, 0, 0, 1]))));
        assert!(p.sans.contains(&San::Dns("localhost".into())));
    }

    #[test]
    fn bad_flags_are_refused() {
        for (nodes, sans) in [
            (vec!["a/b"], vec![]),
            (vec!["x", "x"], vec![]),
            (vec!["x"], vec!["not a name"]),
            (vec!["x"], vec!["y=10.0.0.1"]),
            (vec!["x_y"], vec![]),
            (vec!["x"], vec!["-bad.lan"]),
        ] {
            assert!(plan(&args(&nodes, &sans)).is_err(), "{nodes:?} {sans:?}");
        }
    }

    #[test]
    fn calendar_days() {
        for (days, want) in [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (20_779, (2026, 11, 22)),
            (-1, (1969, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), want, "{days}");
        }
    }

    #[test]
    fn init_writes_private_keys_reuses_the_ca_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(&["cp1", "edge1"], &["cp1=cp1.tail1234.ts.net"]);
        a.dir = dir.path().to_path_buf();
        let mut out = Vec::new();
        init(&a, &mut out).unwrap();
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        for key in ["ca.key", "cp1.key", "edge1.key"] {
            assert_eq!(mode(key), 0o600, "{key}");
        }
        assert_eq!(mode("cp1.pem"), 0o644);
        let ca_before = std::fs::read(dir.path().join("ca.pem")).unwrap();

        // A second run for the same node is refused and writes nothing.
        let before = std::fs::read(dir.path().join("cp1.pem")).unwrap();
        assert!(init(&a, &mut Vec::new()).is_err());
        assert_eq!(std::fs::read(dir.path().join("cp1.pem")).unwrap(), before);

        // A new node is signed by the same CA; --force replaces a node's files.
        let mut more = args(&["agent1"], &[]);
        more.dir = dir.path().to_path_buf();
        let mut out = Vec::new();
        init(&more, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("reusing the CA"));
        a.force = true;
        init(&a, &mut Vec::new()).unwrap();
        assert_ne!(std::fs::read(dir.path().join("cp1.pem")).unwrap(), before);
        assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca_before);
    }
}
