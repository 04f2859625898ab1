//! The Python venv with the pinned client SDKs (tests/conformance/requirements.txt), created
//! once under `target/py-conformance` and shared by every test that drives a real SDK.
#![expect(clippy::unwrap_used, reason = "test scaffolding panics on failure")]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Runs `cmd`, panicking with its output when it fails.
pub fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}. Install python3 with venv and pip (Debian: apt-get install python3-venv python3-pip)."));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's python, creating the venv and installing the pinned packages once.
pub fn venv_python() -> PathBuf {
    let target = target_dir();
    std::fs::create_dir_all(&target).unwrap();
    let venv = target.join("py-conformance");
    let requirements = workspace().join("tests/conformance/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let marker = venv.join(".switchyard-installed");
    // Parallel test processes take turns; the first installs, the rest find the marker.
    let lock = File::create(target.join("py-conformance.lock")).unwrap();
    lock.lock().unwrap();
    let python = venv.join("bin").join("python");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            "creating the Python venv (python3 -m venv)",
        );
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
            "installing the pinned openai and langchain-openai packages with pip",
        );
        std::fs::write(&marker, &wanted).unwrap();
    }
    lock.unlock().unwrap();
    python
}
