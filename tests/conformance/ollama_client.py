"""Conformance of Switchyard's edge with the official `ollama` Python client (what Open WebUI's
Ollama connection and n8n speak too).

Run by tests/tests/edge_conformance.rs. Environment: SWITCHYARD_OLLAMA_URL (the edge's base
URL), SWITCHYARD_KEY (a full-access key), SWITCHYARD_MODEL (a chat model),
SWITCHYARD_EMBED_MODEL (an embedding model). Exits non-zero on the first failure.
"""

import os
import sys

import httpx
import ollama

BASE = os.environ["SWITCHYARD_OLLAMA_URL"]
KEY = os.environ["SWITCHYARD_KEY"]
MODEL = os.environ["SWITCHYARD_MODEL"]
EMBED = os.environ["SWITCHYARD_EMBED_MODEL"]

client = ollama.Client(host=BASE, headers={"Authorization": f"Bearer {KEY}"}, timeout=20)


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
      city: The city's name
    """
    return "sunny"


checks = []


def check(name):
    def wrap(fn):
        checks.append((name, fn))
        return fn
    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


@check("root and version")
def root():
    r = httpx.get(BASE + "/")
    expect(r.status_code == 200 and "Ollama is running" in r.text, r.text)
    expect(httpx.get(BASE + "/api/version").json()["version"], "no version")


@check("list")
def listing():
    names = [m.model for m in client.list().models]
    expect(f"{MODEL}:latest" in names, names)


@check("show")
def show():
    r = client.show(f"{MODEL}:latest")
    expect("completion" in (r.capabilities or []), r)


@check("ps")
def ps():
    names = [m.model for m in client.ps().models]
    expect(f"{MODEL}:latest" in names, names)


@check("chat")
def chat():
    r = client.chat(model=f"{MODEL}:latest", messages=[{"role": "user", "content": "hi"}])
    expect(r.message.role == "assistant" and r.message.content, r)
    expect(r.done and r.done_reason == "stop", r)
    expect(r.prompt_eval_count > 0 and r.eval_count > 0, r)


@check("chat stream")
def chat_stream():
    parts = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True))
    expect(len(parts) >= 2, parts)
    text = "".join(p.message.content for p in parts)
    expect(text, parts)
    expect(all(not p.done for p in parts[:-1]) and parts[-1].done, [p.done for p in parts])
    expect(parts[-1].done_reason == "stop" and parts[-1].eval_count > 0, parts[-1])


@check("the raw stream is NDJSON by default")
def ndjson_default():
    with httpx.stream("POST", BASE + "/api/chat", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}) as r:
        expect(r.headers["content-type"].startswith("application/x-ndjson"), r.headers)
        lines = [line for line in r.iter_lines() if line]
    expect(len(lines) >= 2, lines)


@check("tools")
def tools():
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "weather in Paris?"}],
                    tools=[get_weather])
    calls = r.message.tool_calls or []
    expect(len(calls) == 1, r.message)
    expect(calls[0].function.name == "get_weather", calls)
    expect(calls[0].function.arguments == {"city": "Paris"}, calls[0].function.arguments)
    # The round trip: the result goes back as a tool message without an id.
    r = client.chat(model=MODEL, tools=[get_weather], messages=[
        {"role": "user", "content": "weather in Paris?"},
        r.message,
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ])
    expect(r.message.content and not r.message.tool_calls, r.message)


@check("tools stream")
def tools_stream():
    calls = []
    for part in client.chat(model=MODEL, messages=[{"role": "user", "content": "weather?"}],
                            tools=[get_weather], stream=True):
        calls.extend(part.message.tool_calls or [])
    expect(len(calls) == 1 and calls[0].function.arguments == {"city": "Paris"}, calls)


@check("generate")
def generate():
    r = client.generate(model=MODEL, prompt="hi", system="be brief")
    expect(r.response and r.done, r)
    parts = list(client.generate(model=MODEL, prompt="hi", stream=True))
    expect("".join(p.response for p in parts) and parts[-1].done, parts)


@check("embed")
def embed():
    r = client.embed(model=EMBED, input=["a", "b"])
    expect(len(r.embeddings) == 2 and len(r.embeddings[0]) > 0, r)
    r = client.embeddings(model=EMBED, prompt="a")
    expect(len(r.embedding) > 0, r)


@check("errors: unknown model")
def unknown():
    try:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    except ollama.ResponseError as e:
        expect(e.status_code == 404 and e.error, (e.status_code, e.error))
        return
    raise AssertionError("no ResponseError")


@check("errors: bad key")
def bad_key():
    c = ollama.Client(host=BASE, headers={"Authorization": "Bearer sy_live_wrongwrongwrongwrong00"})
    try:
        c.list()
    except ollama.ResponseError as e:
        expect(e.status_code == 401, e.status_code)
        return
    raise AssertionError("no ResponseError")


failed = 0
for name, fn in checks:
    try:
        fn()
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure with its check's name
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}")
if failed:
    sys.exit(1)
print(f"{len(checks)} checks passed")
