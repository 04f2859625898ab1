"""Conformance of Switchyard's edge with the official `openai` SDK's Responses API.

Run by tests/tests/edge_conformance.rs against an edge whose upstream speaks OpenAI chat,
Ollama's native API, Anthropic Messages or Gemini: the edge translates. Environment:
SWITCHYARD_URL (the edge's base URL ending in /v1), SWITCHYARD_KEY (a full-access key),
SWITCHYARD_MODEL (a model that answers). Exits non-zero on the first failure.
"""

import json
import os
import sys

import openai
from openai import OpenAI

BASE = os.environ["SWITCHYARD_URL"]
KEY = os.environ["SWITCHYARD_KEY"]
MODEL = os.environ["SWITCHYARD_MODEL"]

client = OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=20)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
checks = []


def check(name):
    def wrap(fn):
        checks.append((name, fn))
        return fn
    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


@check("responses.create")
def create():
    r = client.responses.create(
        model=MODEL, instructions="be brief", input="hi", max_output_tokens=50, temperature=0.2
    )
    expect(r.object == "response" and r.id.startswith("resp_"), r)
    expect(r.status == "completed", r.status)
    expect(r.output[0].type == "message" and r.output[0].role == "assistant", r.output)
    expect(r.output_text, r)
    expect(r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage)
    expect(r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, r.usage)


@check("input items: text and an image")
def items():
    r = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
            ]},
        ],
    )
    expect(r.output_text, r)


@check("responses.stream: text events and the final response")
def stream_text():
    with client.responses.stream(model=MODEL, input="hi") as stream:
        kinds = []
        deltas = []
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    expect(kinds[:2] == ["response.created", "response.in_progress"], kinds)
    expect(kinds[-1] == "response.completed", kinds)
    expect("response.output_item.done" in kinds, kinds)
    expect(final.output_text == "".join(deltas) and final.output_text, (final, deltas))
    expect(final.usage and final.usage.output_tokens > 0, final.usage)


@check("stream=True: numbered events")
def stream_raw():
    numbers = []
    for event in client.responses.create(model=MODEL, input="hi", stream=True):
        numbers.append(event.sequence_number)
        last = event
    expect(numbers == list(range(len(numbers))), numbers)
    expect(last.type == "response.completed", last)


@check("function call and its output round trip")
def function_call():
    r = client.responses.create(model=MODEL, input="weather in Paris?", tools=[WEATHER])
    calls = [item for item in r.output if item.type == "function_call"]
    expect(calls, r.output)
    call = calls[0]
    expect(call.name == "get_weather" and call.call_id, call)
    expect(json.loads(call.arguments)["city"] == "Paris", call.arguments)
    history = [{"role": "user", "content": "weather in Paris?"}] + r.output
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"})
    r = client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    expect(r.output_text, r)
    expect(not any(item.type == "function_call" for item in r.output), r.output)


@check("function call streamed")
def function_call_stream():
    with client.responses.stream(model=MODEL, input="weather in Paris?", tools=[WEATHER],
                                 tool_choice="auto") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    expect("response.function_call_arguments.delta" in kinds, kinds)
    expect("response.function_call_arguments.done" in kinds, kinds)
    calls = [item for item in final.output if item.type == "function_call"]
    expect(calls and json.loads(calls[0].arguments)["city"] == "Paris", final.output)


@check("json output")
def json_output():
    r = client.responses.create(model=MODEL, input="a JSON object please",
                                text={"format": {"type": "json_object"}})
    expect(r.status == "completed", r)


@check("stateless: previous_response_id and store are refused")
def stateless():
    for extra in ({"previous_response_id": "resp_123"}, {"store": True}):
        try:
            client.responses.create(model=MODEL, input="hi", **extra)
        except openai.BadRequestError as e:
            expect(e.status_code == 400, e)
            expect("no conversation state" in e.message, e.message)
        else:
            raise AssertionError(f"{extra} was accepted")
    r = client.responses.create(model=MODEL, input="hi", store=False)
    expect(r.output_text, r)


@check("errors: unknown model, the same names in /v1/models")
def errors():
    try:
        client.responses.create(model="no-such-model", input="hi")
    except openai.NotFoundError as e:
        expect(e.status_code == 404, e)
    else:
        raise AssertionError("an unknown model answered")
    ids = [m.id for m in client.models.list()]
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
