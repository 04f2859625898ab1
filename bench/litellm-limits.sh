#!/usr/bin/env bash
# Limit accuracy of two LiteLLM proxies sharing nothing (no Redis), for the side-by-side with
# Switchyard's cluster-wide limits: installs `litellm[proxy]==1.80.0` into target/bench-litellm
# once, then runs bench/litellm_limits.py (about two minutes: start-up plus one aligned minute).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-litellm
if [ ! -x "$venv/bin/litellm" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'litellm[proxy]==1.80.0'
fi
exec "$venv/bin/python" bench/litellm_limits.py "$venv/bin/litellm"
