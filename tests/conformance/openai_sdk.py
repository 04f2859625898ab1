"""Conformance of Switchyard's edge with the official `openai` Python SDK and LangChain.

Run by tests/tests/edge_conformance.rs against an in-process edge and a fake upstream.
Environment: SWITCHYARD_URL (edge base URL ending in /v1), SWITCHYARD_KEY (a full-access key),
SWITCHYARD_NARROW_KEY (a key allowed only `gpt-*`). Exits non-zero on the first failure.
"""

import json
import os
import sys

import openai
from openai import OpenAI

BASE = os.environ["SWITCHYARD_URL"]
KEY = os.environ["SWITCHYARD_KEY"]
NARROW = os.environ["SWITCHYARD_NARROW_KEY"]

client = OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=20)
checks = []


def check(name):
    def wrap(fn):
        checks.append((name, fn))
        return fn
    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


@check("chat")
def chat():
    r = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )
    expect(r.choices[0].message.content.startswith("Hello from"), r)
    expect(r.choices[0].finish_reason == "stop", r)
    expect(r.usage.total_tokens == 21, r.usage)


@check("streaming without usage")
def streaming():
    text, usage_chunks = "", 0
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage_chunks += 1
        for c in chunk.choices:
            text += c.delta.content or ""
    expect(text == "Hello world", text)
    expect(usage_chunks == 0, "usage chunk shown though not asked")


@check("streaming with usage")
def streaming_usage():
    last = None
    for chunk in client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        last = chunk
    expect(last is not None and last.usage is not None, last)
    expect(last.usage.prompt_tokens == 9 and last.choices == [], last)


@check("tool call round trip")
def tools():
    tools = [{
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }]
    messages = [{"role": "user", "content": "weather in Paris?"}]
    r = client.chat.completions.create(model="gpt-test", messages=messages, tools=tools)
    choice = r.choices[0]
    expect(choice.finish_reason == "tool_calls", choice)
    call = choice.message.tool_calls[0]
    expect(isinstance(call.function.arguments, str), call)
    args = json.loads(call.function.arguments)
    expect(args == {"city": "Paris"}, args)
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"})
    r = client.chat.completions.create(model="gpt-test", messages=messages, tools=tools)
    expect(r.choices[0].finish_reason == "stop", r)
    expect(r.choices[0].message.content.startswith("Hello from"), r)


@check("embeddings with a list")
def embeddings():
    r = client.embeddings.create(model="gpt-test", input=["a", "b", "c"])
    expect(len(r.data) == 3, r)
    expect([d.index for d in r.data] == [0, 1, 2], r)
    expect(len(r.data[2].embedding) == 3, r)


@check("n > 1")
def n_choices():
    r = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], n=2
    )
    expect(len(r.choices) == 2, r)


@check("legacy completions")
def completions():
    r = client.completions.create(model="gpt-test", prompt="hello")
    expect(r.choices[0].text == " world", r)


@check("models")
def models():
    ids = [m.id for m in client.models.list()]
    expect("gpt-test" in ids, ids)
    expect(client.models.retrieve("gpt-test").id == "gpt-test", "retrieve")


def raises(exc, fn, status=None):
    try:
        fn()
    except exc as e:
        if status is not None:
            expect(e.status_code == status, f"{exc.__name__}: status {e.status_code}")
        body = e.body if isinstance(e.body, dict) else {}
        expect("message" in body and "type" in body, f"error body {e.body!r}")
        return
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"expected {exc.__name__}, got {type(e).__name__}: {e}")
    raise AssertionError(f"expected {exc.__name__}, nothing raised")


def ask(c, model, **kw):
    return lambda: c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **kw
    )


@check("errors map to the SDK's exception classes")
def errors():
    bad = OpenAI(base_url=BASE, api_key="sy_live_wrongwrongwrongwrong", max_retries=0)
    narrow = OpenAI(base_url=BASE, api_key=NARROW, max_retries=0)
    raises(openai.AuthenticationError, ask(bad, "gpt-test"), 401)
    raises(openai.PermissionDeniedError, ask(narrow, "limited"), 403)
    raises(openai.NotFoundError, ask(client, "no-such-model"), 404)
    raises(openai.NotFoundError, lambda: client.models.retrieve("no-such-model"), 404)
    raises(openai.BadRequestError, ask(client, "local", n=2), 400)
    raises(openai.RateLimitError, ask(client, "limited"), 429)
    raises(openai.InternalServerError, ask(client, "broken"), 502)
    big = "x" * (300 * 1024)
    raises(
        openai.APIStatusError,
        lambda: client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": big}]
        ),
        413,
    )


@check("langchain ChatOpenAI streaming")
def langchain():
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-test", base_url=BASE, api_key=KEY, max_retries=0)
    text = "".join(chunk.content for chunk in llm.stream("hi"))
    expect(text == "Hello world", text)
    expect(llm.invoke("hi").content.startswith("Hello from"), "invoke")


failed = 0
for name, fn in checks:
    try:
        fn()
        print(f"ok    {name}")
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL  {name}: {type(e).__name__}: {e}")
print(f"{len(checks) - failed}/{len(checks)} checks passed (openai {openai.__version__})")
sys.exit(1 if failed else 0)
