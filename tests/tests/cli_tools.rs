//! `switchyard bind` and `switchyard run` against temporary HOME directories: every tool's file
//! parses in its own format and points at the edge with the key, other settings survive, a
//! backup is kept, and `run` starts the tool (a stand-in on PATH) with the right variables.
//! `switchyard init` writes a config that loads, with flags only or answering on stdin.

use std::collections::BTreeMap;
use std::path::Path;

use switchyard::cmd::bind::{self, BindArgs, Tool};
use switchyard::cmd::init::{self, InitArgs};
use switchyard::cmd::run::{self, RunArgs, Runnable};
use switchyard_control_plane::config;
use switchyard_tests::discovery_fakes::write_script;

const EDGE: &str = "http://edge.example:8080/v1";
const KEY: &str = "sy_live_bindtest0123456789";

fn args(tool: Tool) -> BindArgs {
    BindArgs {
        tool,
        edge: EDGE.into(),
        key: Some(KEY.into()),
        model: "coding".into(),
        dry_run: false,
    }
}

fn bind_in(home: &Path, tool: Tool) -> anyhow::Result<(bind::Bound, String, String)> {
    let mut out = Vec::new();
    let bound = bind::bind(&args(tool), home, &mut out)?;
    let text = std::fs::read_to_string(&bound.path)?;
    Ok((bound, text, String::from_utf8(out)?))
}

#[test]
fn every_tool_file_parses_and_points_at_the_edge() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let home = home.path();

    let (_, text, diff) = bind_in(home, Tool::Aider)?;
    let yaml: serde_json::Value = serde_saphyr::from_str(&text)?;
    assert_eq!(yaml["openai-api-base"], "http://edge.example:8080/v1");
    assert_eq!(yaml["openai-api-key"], KEY);
    assert_eq!(yaml["model"], "openai/coding");
    assert!(
        diff.contains("+openai-api-base: http://edge.example:8080/v1"),
        "{diff}"
    );

    let (_, text, _) = bind_in(home, Tool::Continue)?;
    let yaml: serde_json::Value = serde_saphyr::from_str(&text)?;
    assert_eq!(yaml["models"][0]["provider"], "openai");
    assert_eq!(yaml["models"][0]["apiBase"], "http://edge.example:8080/v1");
    assert_eq!(yaml["models"][0]["apiKey"], KEY);

    let (_, text, _) = bind_in(home, Tool::ClaudeCode)?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(
        json["env"]["ANTHROPIC_BASE_URL"],
        "http://edge.example:8080"
    );
    assert_eq!(json["env"]["ANTHROPIC_AUTH_TOKEN"], KEY);

    let (_, text, out) = bind_in(home, Tool::Codex)?;
    let toml: toml_edit::DocumentMut = text.parse()?;
    assert_eq!(toml["model_provider"].as_str(), Some("switchyard"));
    assert_eq!(
        toml["model_providers"]["switchyard"]["base_url"].as_str(),
        Some("http://edge.example:8080/v1")
    );
    assert_eq!(
        toml["model_providers"]["switchyard"]["env_key"].as_str(),
        Some("SWITCHYARD_API_KEY")
    );
    // The edge serves the Responses API, which current Codex versions require.
    assert_eq!(
        toml["model_providers"]["switchyard"]["wire_api"].as_str(),
        Some("responses")
    );
    assert!(out.contains("SWITCHYARD_API_KEY"), "{out}");

    let (_, text, _) = bind_in(home, Tool::OpenWebui)?;
    assert!(
        text.contains("OPENAI_API_BASE_URL=http://edge.example:8080/v1\n"),
        "{text}"
    );
    assert!(text.contains(&format!("OPENAI_API_KEY={KEY}\n")), "{text}");

    let (bound, text, _) = bind_in(home, Tool::Opencode)?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let provider = &json["provider"]["switchyard"];
    assert_eq!(
        provider["options"]["baseURL"],
        "http://edge.example:8080/v1"
    );
    assert_eq!(provider["options"]["apiKey"], KEY);
    assert_eq!(json["model"], "switchyard/coding");
    assert!(bound.backup.is_none(), "a new file has nothing to back up");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&bound.path)?.permissions().mode();
    assert_eq!(mode & 0o077, 0, "the file holds a key: owner only");
    Ok(())
}

#[test]
fn existing_settings_survive_a_backup_is_kept_and_a_rebind_changes_nothing() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let home = home.path();
    let codex = home.join(".codex/config.toml");
    std::fs::create_dir_all(codex.parent().unwrap())?;
    let before = "# my settings\napproval_policy = \"on-request\"\n\n[model_providers.other]\nname = \"Other\"\nbase_url = \"http://other/v1\"\n";
    std::fs::write(&codex, before)?;
    let (bound, text, diff) = bind_in(home, Tool::Codex)?;
    let toml: toml_edit::DocumentMut = text.parse()?;
    assert_eq!(toml["approval_policy"].as_str(), Some("on-request"));
    assert_eq!(
        toml["model_providers"]["other"]["name"].as_str(),
        Some("Other")
    );
    assert!(text.contains("# my settings"), "comments survive: {text}");
    assert_eq!(std::fs::read_to_string(bound.backup.unwrap())?, before);
    assert!(diff.contains(" approval_policy = \"on-request\""), "{diff}");
    assert!(diff.contains("+model_provider = \"switchyard\""), "{diff}");

    let claude = home.join(".claude/settings.json");
    std::fs::create_dir_all(claude.parent().unwrap())?;
    std::fs::write(&claude, r#"{"theme": "dark", "env": {"FOO": "1"}}"#)?;
    let (_, text, _) = bind_in(home, Tool::ClaudeCode)?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(json["theme"], "dark");
    assert_eq!(json["env"]["FOO"], "1");

    // Binding again is a no-op; a dry run writes nothing.
    let (bound, _, out) = bind_in(home, Tool::ClaudeCode)?;
    assert!(!bound.written, "{out}");
    let aider = home.join(".aider.conf.yml");
    let mut out = Vec::new();
    let dry = BindArgs {
        dry_run: true,
        ..args(Tool::Aider)
    };
    bind::bind(&dry, home, &mut out)?;
    assert!(!aider.exists());
    assert!(String::from_utf8(out)?.contains("dry run"));

    // A file that does not parse is refused, not overwritten.
    std::fs::write(&aider, "model: [unclosed\n")?;
    let err = bind::bind(&args(Tool::Aider), home, &mut Vec::new()).unwrap_err();
    assert!(
        format!("{err:#}").contains(".aider.conf.yml is not valid"),
        "{err:#}"
    );
    assert_eq!(std::fs::read_to_string(&aider)?, "model: [unclosed\n");
    Ok(())
}

#[test]
fn run_starts_the_tool_with_its_variables_and_arguments() -> anyhow::Result<()> {
    let bin = tempfile::tempdir()?;
    for name in ["claude", "codex", "aider"] {
        write_script(
            bin.path(),
            name,
            "echo \"$(basename \"$0\") $*\"; env | grep -E '^(ANTHROPIC|OPENAI)_' | sort",
        )?;
    }
    let base = "http://edge.example:8080";
    let cases = [
        (
            Runnable::Claude,
            vec![
                "claude -p hi".to_string(),
                format!("ANTHROPIC_AUTH_TOKEN={KEY}"),
                format!("ANTHROPIC_BASE_URL={base}"),
            ],
        ),
        (
            Runnable::Codex,
            vec![
                "codex -p hi".to_string(),
                format!("OPENAI_API_KEY={KEY}"),
                format!("OPENAI_BASE_URL={base}/v1"),
            ],
        ),
        (
            Runnable::Aider,
            vec![
                "aider -p hi".to_string(),
                format!("OPENAI_API_BASE={base}/v1"),
                format!("OPENAI_API_KEY={KEY}"),
            ],
        ),
    ];
    for (tool, want) in cases {
        let args = RunArgs {
            tool,
            edge: EDGE.into(),
            key: Some(KEY.into()),
            args: vec!["-p".into(), "hi".into()],
        };
        let mut command = run::command(&args);
        // The stand-ins are found on PATH, as the real tools would be.
        command.env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()));
        let set = run::variables(tool, EDGE, KEY);
        for (name, _) in std::env::vars() {
            let ours = set.iter().any(|(n, _)| *n == name);
            if !ours && (name.starts_with("ANTHROPIC_") || name.starts_with("OPENAI_")) {
                command.env_remove(name);
            }
        }
        let output = command.output()?;
        assert!(output.status.success(), "{output:?}");
        let lines: Vec<String> = String::from_utf8(output.stdout)?
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(lines, want);
    }
    Ok(())
}

fn init_args(out: &Path) -> InitArgs {
    InitArgs {
        out: out.to_path_buf(),
        force: false,
        yes: true,
        providers: vec![],
        locals: vec!["ollama=http://127.0.0.1:11434/v1".into()],
        no_scan: true,
        no_key: false,
    }
}

/// The written file loads as a Switchyard config with `env`.
fn loads(text: &str, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let state = switchyard_control_plane::state::ClusterState::default();
    let sealer = config::Sealer::new(None, &state);
    config::parse(text, env, &sealer).map_err(anyhow::Error::msg)?;
    Ok(())
}

#[tokio::test]
async fn init_writes_a_config_without_questions_and_refuses_to_overwrite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.yaml");
    let env = BTreeMap::from([
        ("GROQ_API_KEY".to_string(), "gsk_test".to_string()),
        ("OPENROUTER_API_KEY".to_string(), "sk-or-test".to_string()),
    ]);
    let mut out = Vec::new();
    let written = init::init(&init_args(&path), &env, &mut std::io::empty(), &mut out).await?;
    let text = std::fs::read_to_string(&path)?;
    assert_eq!(text, written.text);
    let yaml: serde_json::Value = serde_saphyr::from_str(&text)?;
    // Keys stay in the environment: the file names the variables.
    assert_eq!(
        yaml["providers"]["groq"]["keys"][0]["api_key"],
        "os.environ/GROQ_API_KEY"
    );
    assert_eq!(
        yaml["providers"]["openrouter"]["keys"][0]["api_key"],
        "os.environ/OPENROUTER_API_KEY"
    );
    assert_eq!(yaml["endpoints"][0]["id"], "ollama");
    assert_eq!(yaml["endpoints"][0]["url"], "http://127.0.0.1:11434/v1");
    let key = written.key.clone().unwrap_or_default();
    assert!(key.starts_with("sy_live_"), "{key}");
    assert_eq!(
        yaml["keys"][0]["sha256"],
        switchyard_control_plane::seal::sha256_hex(&key)
    );
    assert!(!text.contains(&key) && !text.contains("gsk_test"), "{text}");
    let shown = String::from_utf8(out)?;
    assert!(shown.contains(&format!("client key:    {key}")), "{shown}");
    assert!(
        shown.contains("providers:     openrouter (OPENROUTER_API_KEY), groq (GROQ_API_KEY)"),
        "{shown}"
    );
    loads(&text, &env)?;

    // An existing file stays unless --force.
    let err = init::init(
        &init_args(&path),
        &env,
        &mut std::io::empty(),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("pass --force"), "{err}");
    assert_eq!(std::fs::read_to_string(&path)?, text);

    // Named providers only, no key; an unknown provider is refused by name.
    let args = InitArgs {
        force: true,
        providers: vec!["groq".into()],
        no_key: true,
        locals: vec![],
        ..init_args(&path)
    };
    let written = init::init(&args, &env, &mut std::io::empty(), &mut Vec::new()).await?;
    let yaml: serde_json::Value = serde_saphyr::from_str(&written.text)?;
    assert!(
        yaml["providers"].get("openrouter").is_none(),
        "{}",
        written.text
    );
    assert!(yaml.get("keys").is_none() && written.key.is_none());
    let bad = InitArgs {
        providers: vec!["nope".into()],
        ..args.clone()
    };
    let err = init::init(&bad, &env, &mut std::io::empty(), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown provider `nope`"), "{err}");
    let bad = InitArgs {
        locals: vec!["ollama:11434".into()],
        ..args
    };
    let err = init::init(&bad, &env, &mut std::io::empty(), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected KIND=URL"), "{err}");
    Ok(())
}

#[tokio::test]
async fn init_asks_on_stdin_and_writes_the_answers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.yaml");
    let env = BTreeMap::from([
        ("OPENROUTER_API_KEY".to_string(), "sk-or-test".to_string()),
        ("GROQ_API_KEY".to_string(), "gsk_test".to_string()),
        ("GROQ_API_KEY_2".to_string(), "gsk_test2".to_string()),
    ]);
    let args = InitArgs {
        yes: false,
        ..init_args(&path)
    };
    // No to OpenRouter, Enter (yes) to Groq; add mistral, try a typo, finish; keep the
    // local server after a bad answer; no client key.
    let answers = "n\n\nmistral\nbogus\n\nmaybe\ny\nn\n";
    let mut out = Vec::new();
    let written = init::init(&args, &env, &mut answers.as_bytes(), &mut out).await?;
    let shown = String::from_utf8(out)?;
    assert!(
        shown.contains("Use provider openrouter (key in OPENROUTER_API_KEY)? [Y/n]"),
        "{shown}"
    );
    assert!(shown.contains("unknown provider `bogus`"), "{shown}");
    assert!(shown.contains("please answer y or n"), "{shown}");
    let providers: Vec<&str> = written
        .plan
        .providers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(providers, vec!["groq", "mistral"]);
    assert!(written.key.is_none());
    let yaml: serde_json::Value = serde_saphyr::from_str(&written.text)?;
    // Both of Groq's keys, rotated in order; mistral's default variable.
    assert_eq!(
        yaml["providers"]["groq"]["keys"][1]["api_key"],
        "os.environ/GROQ_API_KEY_2"
    );
    assert_eq!(
        yaml["providers"]["mistral"]["keys"][0]["api_key"],
        "os.environ/MISTRAL_API_KEY"
    );
    assert_eq!(yaml["endpoints"][0]["kind"], "ollama");
    let env = BTreeMap::from([
        ("GROQ_API_KEY".to_string(), "gsk_test".to_string()),
        ("GROQ_API_KEY_2".to_string(), "gsk_test2".to_string()),
        ("MISTRAL_API_KEY".to_string(), "m".to_string()),
    ]);
    loads(&written.text, &env)?;

    // Input that ends early (no to Groq) takes the defaults for what is left: Mistral, the
    // local server and a key.
    let args = InitArgs {
        force: true,
        ..args
    };
    let written = init::init(&args, &env, &mut "n\n".as_bytes(), &mut Vec::new()).await?;
    let providers: Vec<&str> = written
        .plan
        .providers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(providers, vec!["mistral"]);
    assert_eq!(written.plan.locals.len(), 1);
    assert!(written.key.is_some());
    Ok(())
}
