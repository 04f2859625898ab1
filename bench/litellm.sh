#!/usr/bin/env bash
# Side-by-side with LiteLLM's proxy: installs `litellm[proxy]==1.80.0` into a venv under
# target/bench-litellm (once), then runs the load benchmark with LiteLLM as a fourth target
# against the same fast fake upstream. Extra arguments go to `switchyard-bench load`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-litellm
if [ ! -x "$venv/bin/litellm" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'litellm[proxy]==1.80.0'
fi
cargo build --release -p switchyard-bench
exec target/release/switchyard-bench load --litellm-bin "$venv/bin/litellm" "$@"
