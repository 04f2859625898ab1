"""Conformance of Switchyard's edge with the official `anthropic` Python SDK.

Run by tests/tests/edge_conformance.rs against an edge whose upstreams speak another dialect
(an OpenAI-compatible fake, or an Anthropic-native one): the edge translates. Environment:
SWITCHYARD_ANTHROPIC_URL (the edge's base URL), SWITCHYARD_KEY (a full-access key),
SWITCHYARD_MODEL (a model that answers), SWITCHYARD_LIMITED_MODEL (one whose upstream is
rate limited). Exits non-zero on the first failure.
"""

import os
import sys

import anthropic
import httpx

BASE = os.environ["SWITCHYARD_ANTHROPIC_URL"]
KEY = os.environ["SWITCHYARD_KEY"]
MODEL = os.environ["SWITCHYARD_MODEL"]
LIMITED = os.environ["SWITCHYARD_LIMITED_MODEL"]

# The SDK sends the key in `x-api-key`.
client = anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0, timeout=20)
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
checks = []


def check(name):
    def wrap(fn):
        checks.append((name, fn))
        return fn
    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


@check("create")
def create():
    m = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hi"}],
    )
    expect(m.type == "message" and m.role == "assistant", m)
    expect(m.id.startswith("msg_"), m.id)
    expect(m.content[0].type == "text" and m.content[0].text, m.content)
    expect(m.stop_reason == "end_turn", m.stop_reason)
    expect(m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage)


@check("system as blocks and an image")
def system_blocks():
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    m = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system=[{"type": "text", "text": "be brief"}],
        stop_sequences=["END"],
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": pixel}},
            {"type": "text", "text": "what is this?"},
        ]}],
    )
    expect(m.content[0].text, m.content)


@check("stream: text and the final message")
def stream_text():
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    expect(text, "no text streamed")
    expect(final.content[0].text == text, (final.content, text))
    expect(final.stop_reason == "end_turn", final.stop_reason)
    expect(final.usage.output_tokens > 0, final.usage)


@check("stream: Anthropic's event sequence")
def stream_events():
    events = client.messages.create(
        model=MODEL, max_tokens=100, stream=True,
        messages=[{"role": "user", "content": "hi"}],
    )
    kinds = [e.type for e in events]
    expect(kinds[0] == "message_start", kinds)
    expect(kinds[1] == "content_block_start", kinds)
    expect("content_block_delta" in kinds, kinds)
    expect(kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"], kinds)


@check("tools: a tool_use answer")
def tools():
    m = client.messages.create(
        model=MODEL, max_tokens=100, tools=[WEATHER], tool_choice={"type": "auto"},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    uses = [b for b in m.content if b.type == "tool_use"]
    expect(len(uses) == 1, m.content)
    expect(uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}, uses[0])
    expect(uses[0].id, uses[0])
    expect(m.stop_reason == "tool_use", m.stop_reason)


@check("tools: streamed input_json_delta")
def tools_stream():
    kinds = []
    with client.messages.stream(
        model=MODEL, max_tokens=100, tools=[WEATHER],
        messages=[{"role": "user", "content": "weather in Paris?"}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                kinds.append(event.delta.type)
        final = stream.get_final_message()
    expect("input_json_delta" in kinds, kinds)
    uses = [b for b in final.content if b.type == "tool_use"]
    expect(uses and uses[0].input == {"city": "Paris"}, final.content)
    expect(final.stop_reason == "tool_use", final.stop_reason)


@check("tools: a tool_result round trip")
def tool_result():
    m = client.messages.create(
        model=MODEL, max_tokens=100, tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21 C"},
                {"type": "text", "text": "so?"},
            ]},
        ],
    )
    expect(m.content[0].type == "text" and m.content[0].text, m.content)
    expect(m.stop_reason == "end_turn", m.stop_reason)


@check("bearer auth (ANTHROPIC_AUTH_TOKEN)")
def bearer():
    c = anthropic.Anthropic(base_url=BASE, auth_token=KEY, api_key=None, max_retries=0)
    m = c.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    expect(m.content, m)


@check("count_tokens")
def count_tokens():
    r = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hello there"}])
    expect(r.input_tokens > 0, r)


@check("error: unknown model is not_found_error")
def unknown_model():
    try:
        client.messages.create(model="no-such-model", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    except anthropic.NotFoundError as e:
        expect(e.body["error"]["type"] == "not_found_error", e.body)
        expect(e.body["type"] == "error", e.body)
        return
    raise AssertionError("no NotFoundError")


@check("error: a wrong key is authentication_error")
def bad_key():
    c = anthropic.Anthropic(base_url=BASE, api_key="sy_live_wrongwrongwrongwrong00", max_retries=0)
    try:
        c.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    except anthropic.AuthenticationError as e:
        expect(e.body["error"]["type"] == "authentication_error", e.body)
        return
    raise AssertionError("no AuthenticationError")


@check("error: rate limited upstream is rate_limit_error")
def limited():
    try:
        client.messages.create(model=LIMITED, max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    except anthropic.RateLimitError as e:
        expect(e.body["error"]["type"] == "rate_limit_error", e.body)
        expect(e.response.headers.get("retry-after"), e.response.headers)
        return
    raise AssertionError("no RateLimitError")


@check("error: a bad request is invalid_request_error")
def bad_request():
    r = httpx.post(f"{BASE}/v1/messages", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                   json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    expect(r.status_code == 400, r.status_code)
    body = r.json()
    expect(body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body)
    expect("max_tokens" in body["error"]["message"], body)
    r = httpx.post(f"{BASE}/v1/messages", headers={"x-api-key": KEY}, content=b"{not json")
    expect(r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text)


@check("the /anthropic prefix and its model list")
def prefix():
    c = anthropic.Anthropic(base_url=f"{BASE}/anthropic", api_key=KEY, max_retries=0)
    m = c.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    expect(m.content, m)
    ids = [model.id for model in c.models.list()]
    expect(MODEL in ids, ids)


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
