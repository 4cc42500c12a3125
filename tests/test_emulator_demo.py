"""The demo model answers what frameworks send: TGI ``stream``, OpenAI-style chat, limits, stops.

Shapes checked against the OpenAI chat completions reference: ``chat.completion`` with
``choices[].message`` and ``usage``; ``chat.completion.chunk`` events with ``choices[].delta``,
a last choice with ``finish_reason``, with ``stream_options.include_usage`` an extra chunk of
empty ``choices`` and the ``usage`` (``usage: null`` on the others), then ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sagestream
from sagestream.emulator import Emulator, demo_tokens
from sagestream.emulator.demo import NATURAL_LENGTHS, answer_length


def _parts(resp: dict[str, Any]) -> list[bytes]:
    return [event["PayloadPart"]["Bytes"] for event in resp["Body"]]


def _sse_data(parts: list[bytes]) -> list[str]:
    text = b"".join(parts).decode()
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    return [e[len("data: ") :] for e in events]


CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]}
PROMPT = "Be brief.\nHi there"


def test_tgi_stream_flag_in_the_body_selects_server_sent_events(runtime_client: Any) -> None:
    body = {"inputs": "Tell me", "parameters": {"max_new_tokens": 6}, "stream": True}
    resp = runtime_client.invoke_endpoint_with_response_stream(EndpointName="demo", Body=json.dumps(body))
    assert resp["ContentType"] == "text/event-stream"
    docs = [json.loads(d) for d in _sse_data(_parts(resp))]
    assert [d["token"]["text"] for d in docs] == demo_tokens("Tell me", 6)
    assert docs[-1]["generated_text"] == "".join(demo_tokens("Tell me", 6))
    # "stream": false on InvokeEndpoint: the TGI JSON answer.
    body["stream"] = False
    resp = runtime_client.invoke_endpoint(EndpointName="demo", Body=json.dumps(body))
    assert resp["ContentType"] == "application/json"
    assert json.loads(resp["Body"].read()) == [{"generated_text": "".join(demo_tokens("Tell me", 6))}]


def test_readme_snippet_yields_tokens(emulator: Emulator) -> None:
    client = sagestream.Client(
        region_name=emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
    )
    with client.invoke_stream(
        "demo", b'{"inputs": "Hi", "stream": true}', content_type="application/json"
    ) as stream:
        tokens = [event.json()["token"]["text"] for event in stream.sse()]
    assert tokens == demo_tokens("Hi")


def test_chat_completion_on_invoke_endpoint(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint(
        EndpointName="demo", Body=json.dumps({**CHAT, "model": "my-model"}), ContentType="application/json"
    )
    assert resp["ContentType"] == "application/json"
    doc = json.loads(resp["Body"].read())
    assert doc["object"] == "chat.completion"
    assert doc["id"].startswith("chatcmpl-")
    assert isinstance(doc["created"], int)
    assert doc["model"] == "my-model"
    (choice,) = doc["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": "".join(demo_tokens(PROMPT))}
    assert choice["finish_reason"] == "stop"
    n = answer_length(PROMPT)
    assert doc["usage"] == {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": 4 + n}


def _chunks(resp: dict[str, Any]) -> Iterator[dict[str, Any]]:
    data = _sse_data(_parts(resp))
    assert data[-1] == "[DONE]"
    for item in data[:-1]:
        yield json.loads(item)


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_completion_chunks_on_streams(runtime_client: Any, include_usage: bool) -> None:
    body: dict[str, Any] = {**CHAT, "stream": True, "max_tokens": 4}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    resp = runtime_client.invoke_endpoint_with_response_stream(EndpointName="demo", Body=json.dumps(body))
    assert resp["ContentType"] == "text/event-stream"
    chunks = list(_chunks(resp))
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["model"] == "demo" for c in chunks)
    usage_chunk = chunks.pop() if include_usage else None
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert content == demo_tokens(PROMPT, 4)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 5 + ["length"]
    assert chunks[-1]["choices"][0]["delta"] == {}
    if include_usage:
        assert usage_chunk is not None
        assert usage_chunk["choices"] == []
        assert usage_chunk["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
        assert all(c["usage"] is None for c in chunks)
    else:
        assert all("usage" not in c for c in chunks)


def test_chat_stream_false_on_a_stream_is_one_completion(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=json.dumps({**CHAT, "stream": False, "max_completion_tokens": 2})
    )
    (part,) = _parts(resp)
    doc = json.loads(part)
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"]["content"] == "".join(demo_tokens(PROMPT, 2))
    assert doc["choices"][0]["finish_reason"] == "length"


def test_stop_sequences(runtime_client: Any) -> None:
    words = demo_tokens(PROMPT, 20)
    stop = words[3].strip()  # a whole word that the answer reaches
    full = "".join(words)
    cut = full.index(stop)
    # OpenAI: the answer ends before the stop sequence, finish_reason "stop".
    resp = runtime_client.invoke_endpoint(EndpointName="demo", Body=json.dumps({**CHAT, "stop": [stop]}))
    doc = json.loads(resp["Body"].read())
    assert doc["choices"][0]["message"]["content"] == full[:cut]
    assert doc["choices"][0]["finish_reason"] == "stop"
    # TGI parameters.stop: generation ends with the stop sequence, which is kept.
    tgi = {"inputs": PROMPT, "parameters": {"stop": [stop], "max_new_tokens": 20}}
    resp = runtime_client.invoke_endpoint(EndpointName="demo", Body=json.dumps(tgi))
    assert json.loads(resp["Body"].read()) == [{"generated_text": full[: cut + len(stop)]}]


def test_answers_end_on_their_own_before_max_tokens(runtime_client: Any) -> None:
    """As an LLM's: ``max_tokens`` bounds an answer, it does not set its length."""
    n = answer_length(PROMPT)
    assert n in NATURAL_LENGTHS
    for limit in (512, n):
        resp = runtime_client.invoke_endpoint(
            EndpointName="demo", Body=json.dumps({**CHAT, "max_tokens": limit})
        )
        (choice,) = json.loads(resp["Body"].read())["choices"]
        assert choice["message"]["content"] == "".join(demo_tokens(PROMPT)), limit
        assert choice["message"]["content"].endswith(".")
        assert choice["finish_reason"] == "stop"
    # A lower limit cuts the answer mid-sentence, and says so.
    resp = runtime_client.invoke_endpoint(EndpointName="demo", Body=json.dumps({**CHAT, "max_tokens": n - 1}))
    (choice,) = json.loads(resp["Body"].read())["choices"]
    assert choice["message"]["content"] == "".join(demo_tokens(PROMPT, n - 1))
    assert not choice["message"]["content"].endswith(".")
    assert choice["finish_reason"] == "length"
    # TGI: the same answer, whatever max_new_tokens above it.
    tgi = {"inputs": PROMPT, "parameters": {"max_new_tokens": 1000}, "stream": True}
    resp = runtime_client.invoke_endpoint_with_response_stream(EndpointName="demo", Body=json.dumps(tgi))
    docs = [json.loads(d) for d in _sse_data(_parts(resp))]
    assert docs[-1]["generated_text"] == "".join(demo_tokens(PROMPT))


def test_a_prompt_that_asks_for_a_length_gets_it(runtime_client: Any) -> None:
    prompt = "Tell me about rivers in 75 words"
    assert answer_length(prompt) == 75
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 500}}
    resp = runtime_client.invoke_endpoint_with_response_stream(EndpointName="demo", Body=json.dumps(body))
    parts = [p.decode() for p in _parts(resp)]
    assert parts == demo_tokens(prompt)
    assert len(parts) == 75
    assert parts[-1].endswith(".")
    # The last phrase asking for a length counts; max_tokens still cuts it.
    chat = {"messages": [{"role": "user", "content": "100 words? No: 60 tokens"}], "max_tokens": 50}
    doc = json.loads(
        runtime_client.invoke_endpoint(EndpointName="demo", Body=json.dumps(chat))["Body"].read()
    )
    assert doc["usage"]["completion_tokens"] == 50
    assert doc["choices"][0]["finish_reason"] == "length"
    assert answer_length("100 words? No: 60 tokens") == 60
    assert answer_length("") in NATURAL_LENGTHS


def test_max_tokens_forms(runtime_client: Any) -> None:
    for body in (
        {"inputs": "x", "max_tokens": 3},
        {"inputs": "x", "max_new_tokens": 3},
        {"inputs": "x", "parameters": {"max_new_tokens": 3}},
    ):
        resp = runtime_client.invoke_endpoint_with_response_stream(EndpointName="demo", Body=json.dumps(body))
        assert [p.decode() for p in _parts(resp)] == demo_tokens("x", 3)


@pytest.mark.parametrize(
    ("spec", "content_type"),
    [("demo:sse", "text/event-stream"), ("demo:jsonl", "application/jsonlines"), ("demo", "text/plain")],
)
def test_endpoint_default_format(spec: str, content_type: str) -> None:
    with Emulator(endpoints={"x": spec}) as emu:
        client = emu.boto3_client()
        resp = client.invoke_endpoint_with_response_stream(EndpointName="x", Body=b"hello")
        assert resp["ContentType"] == content_type
        assert len(_parts(resp)) == answer_length("hello")
        # The request's own choice still wins.
        resp = client.invoke_endpoint_with_response_stream(
            EndpointName="x", Body=b"hello", Accept="text/plain", CustomAttributes="tokens=2"
        )
        assert resp["ContentType"] == "text/plain"
        assert [p.decode() for p in _parts(resp)] == demo_tokens("hello", tokens=2)


def test_unknown_demo_format_is_refused() -> None:
    with pytest.raises(ValueError, match="demo:FORMAT"):
        Emulator(endpoints={"x": "demo:xml"})
