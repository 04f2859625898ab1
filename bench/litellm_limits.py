"""Multi-replica limit accuracy of LiteLLM's proxy, as users run it without Redis.

Two LiteLLM proxies that share nothing serve one model whose deployment declares `rpm: 30`,
with a spare deployment as its fallback. The limited upstream enforces 30 requests per
wall-clock minute itself and answers Groq-style `x-ratelimit-*` headers (429 beyond 30).
Clients send 2 requests a second for one aligned minute, alternating between the proxies.
Printed: what the limited upstream received and refused, and what the clients got.

Run by bench/litellm-limits.sh (which installs LiteLLM); compare with Switchyard's
`cargo test -p switchyard-tests --test limits_upstream -- --nocapture`.
"""

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

LIMIT = 30
WINDOW = 60.0
RATE_PER_S = 2.0


class Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, limit):
        super().__init__(("127.0.0.1", 0), Handler)
        self.limit = limit
        self.lock = threading.Lock()
        self.window = None
        self.used = 0
        self.accepted = []
        self.refused = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_json(200, {"object": "list", "data": [{"id": "bench", "object": "model"}]}, {})

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        srv = self.server
        now = time.time()
        window = int(now // WINDOW)
        with srv.lock:
            if srv.window != window:
                srv.window, srv.used = window, 0
            over = srv.limit is not None and srv.used >= srv.limit
            if not over:
                srv.used += 1
                srv.accepted.append(now)
            else:
                srv.refused.append(now)
            used = srv.used
        reset = WINDOW - (now % WINDOW)
        headers = {}
        if srv.limit is not None:
            headers = {
                "x-ratelimit-limit-requests": str(srv.limit),
                "x-ratelimit-remaining-requests": str(max(srv.limit - used, 0)),
                "x-ratelimit-reset-requests": f"{reset:.1f}s",
            }
        if over:
            headers["retry-after"] = str(int(reset) + 1)
            self.send_json(429, {"error": {"message": "rate limit reached", "type": "rate_limit_error"}}, headers)
            return
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(now),
            "model": "bench",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        }
        self.send_json(200, body, headers)

    def send_json(self, status, body, headers):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def serve(limit):
    srv = Upstream(limit)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_litellm(litellm, limited, spare, workdir, index):
    config = f"""model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench
      api_base: http://127.0.0.1:{limited.server_port}/v1
      api_key: sk-upstream
      rpm: {LIMIT}
  - model_name: spare
    litellm_params:
      model: openai/bench
      api_base: http://127.0.0.1:{spare.server_port}/v1
      api_key: sk-upstream
router_settings:
  routing_strategy: usage-based-routing-v2
  enable_pre_call_checks: true
  num_retries: 0
litellm_settings:
  fallbacks: [{{"bench": ["spare"]}}]
"""
    path = os.path.join(workdir, f"config-{index}.yaml")
    with open(path, "w") as f:
        f.write(config)
    port = free_port()
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    log = open(os.path.join(workdir, f"litellm-{index}.log"), "w")
    proc = subprocess.Popen(
        [litellm, "--config", path, "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    return proc, port


def wait_ready(port, deadline):
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    return False


def call(port, results, lock):
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
        headers={"content-type": "application/json", "authorization": "Bearer sk-anything"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (urllib.error.URLError, OSError):
        status = 0
    with lock:
        results.append(status)


def main():
    litellm = sys.argv[1]
    limited, spare = serve(LIMIT), serve(None)
    workdir = tempfile.mkdtemp(prefix="litellm-limits-")
    procs = [start_litellm(litellm, limited, spare, workdir, i) for i in range(2)]
    try:
        deadline = time.time() + 240
        if not all(wait_ready(port, deadline) for _, port in procs):
            sys.exit(f"LiteLLM did not start; logs in {workdir}")
        # Warm each proxy once on the spare model, then start at a wall-clock minute.
        time.sleep(WINDOW - time.time() % WINDOW + 0.2)
        start = time.time()
        window = int(start // WINDOW)
        results, lock, threads = [], threading.Lock(), []
        n = int(RATE_PER_S * (WINDOW - 2))
        for i in range(n):
            target = start + i / RATE_PER_S
            time.sleep(max(0.0, target - time.time()))
            t = threading.Thread(target=call, args=(procs[i % 2][1], results, lock))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(60)
        accepted = sum(1 for t in limited.accepted if int(t // WINDOW) == window)
        refused = sum(1 for t in limited.refused if int(t // WINDOW) == window)
        ok = sum(1 for s in results if s == 200)
        print(f"litellm 1.80.0, 2 proxies sharing nothing, deployment rpm {LIMIT}, {n} requests in one minute")
        print(f"limited upstream: received {accepted + refused}, accepted {accepted}, answered 429 {refused}")
        print(f"spare upstream: {len(spare.accepted)} requests")
        print(f"clients: {ok} ok, {len(results) - ok} errors ({sorted(set(results))})")
    finally:
        for proc, _ in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main()
