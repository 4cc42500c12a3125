"""The demo model: deterministic text, token by token, in the shapes LLM containers answer.

It reads the requests frameworks send to SageMaker LLM containers:

- TGI / LMI style ``{"inputs": ..., "parameters": {"max_new_tokens": N, "stop": [...]},
  "stream": true}`` (also ``prompt`` / ``text_inputs``, or a plain-text body), answered as
  plain text parts, TGI server-sent events, LMI JSON lines or ``[{"generated_text": ...}]``;
- OpenAI-compatible chat ``{"messages": [...], "max_tokens": N, "stop": ..., "stream": true,
  "stream_options": {"include_usage": true}}`` (what vLLM / LMI containers serve), answered as
  a ``chat.completion`` document or ``chat.completion.chunk`` events ending ``data: [DONE]``.

The same prompt always gives the same words (``demo_tokens``). An answer ends on its own, as
an LLM's does (finish reason ``stop``): its length is the number of words or tokens the prompt
asks for ("in 300 words", "50 tokens"), else 12 to 40 tokens derived from the prompt
(``answer_length``). ``max_tokens`` only cuts it (finish reason ``length``, no closing period);
the ``tokens=N`` knob forces the length. Output is generated lazily, so a long answer costs
memory for one batch at a time.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from .faults import FORMATS, MAX_TOKENS
from .models import ModelReply, ModelRequest, batches

__all__ = [
    "NATURAL_LENGTHS",
    "DemoModel",
    "DemoPrompt",
    "answer_length",
    "demo_format",
    "demo_tokens",
    "parse_prompt",
]

#: The lengths (in tokens) of the answers to prompts that ask for no length.
NATURAL_LENGTHS = range(12, 41)
#: "in 300 words", "50 tokens": a prompt asking for a length (the last such phrase counts).
_ASKED_LENGTH = re.compile(r"\b(\d{1,9})\s+(?:words?|tokens?)\b", re.IGNORECASE)

CONTENT_TYPES = {
    "text": "text/plain",
    "sse": "text/event-stream",
    "jsonl": "application/jsonlines",
    "json": "application/json",
    "chat": "application/json",
    "chat-sse": "text/event-stream",
}
_ACCEPT_FORMATS = {
    "text/plain": "text",
    "text/event-stream": "sse",
    "application/jsonlines": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/json": "json",
}

_WORDS = (
    "stream",
    "river",
    "token",
    "frame",
    "model",
    "answer",
    "bright",
    "quiet",
    "swift",
    "endpoint",
    "signal",
    "packet",
    "harbor",
    "lantern",
    "meadow",
    "orbit",
    "pixel",
    "quartz",
    "rocket",
    "summit",
    "timber",
    "velvet",
    "willow",
    "zephyr",
    "amber",
    "beacon",
    "cobalt",
    "delta",
    "ember",
    "fable",
    "glacier",
    "horizon",
    "island",
    "jasper",
    "kernel",
    "lumen",
    "marble",
    "nectar",
    "onyx",
    "prism",
    "quiver",
    "ripple",
    "saffron",
    "tundra",
    "umber",
    "vortex",
    "wander",
    "yonder",
)


@dataclass
class DemoPrompt:
    """What the demo reads from a request body."""

    prompt: str
    #: ``max_tokens`` / ``max_completion_tokens`` / ``max_new_tokens`` (top level or TGI
    #: ``parameters``), if given.
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    #: The body's ``"stream"`` flag, if given.
    stream: bool | None = None
    #: An OpenAI-style ``messages`` request.
    chat: bool = False
    model: str | None = None
    include_usage: bool = False


def _int_field(*values: object) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _stop_field(*values: object) -> list[str]:
    for value in values:
        if isinstance(value, str) and value:
            return [value]
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str) and v]
    return []


def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def parse_prompt(body: bytes) -> DemoPrompt:
    """The prompt, limits and shape a request body asks for; a non-JSON body is the prompt."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return DemoPrompt(body.decode("utf-8", "replace"))
    if isinstance(doc, str):
        return DemoPrompt(doc)
    if not isinstance(doc, dict):
        return DemoPrompt(body.decode("utf-8", "replace"))
    params = doc.get("parameters")
    params = params if isinstance(params, dict) else {}
    stream = doc.get("stream")
    options = doc.get("stream_options")
    parsed = DemoPrompt(
        "",
        max_tokens=_int_field(
            doc.get("max_tokens"),
            doc.get("max_completion_tokens"),
            doc.get("max_new_tokens"),
            params.get("max_new_tokens"),
            params.get("max_tokens"),
        ),
        stop=_stop_field(doc.get("stop"), params.get("stop"), doc.get("stop_sequences")),
        stream=stream if isinstance(stream, bool) else None,
        model=doc.get("model") if isinstance(doc.get("model"), str) else None,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
    )
    messages = doc.get("messages")
    if isinstance(messages, list):
        parsed.chat = True
        parsed.prompt = "\n".join(_message_text(m.get("content")) for m in messages if isinstance(m, dict))
        return parsed
    prompt = doc.get("inputs", doc.get("prompt", doc.get("text_inputs", "")))
    if isinstance(prompt, list):
        prompt = " ".join(str(p) for p in prompt)
    parsed.prompt = str(prompt)
    return parsed


def answer_length(prompt: str) -> int:
    """How many tokens the demo's answer to ``prompt`` has when nothing cuts it.

    The number the prompt asks for ("in 300 words", "50 tokens"; the last such phrase; at most
    1,000,000), else one of ``NATURAL_LENGTHS`` derived from the prompt: the same prompt, the
    same length.
    """
    asked = _ASKED_LENGTH.findall(prompt)
    if asked:
        return min(int(asked[-1]), MAX_TOKENS)
    seed = zlib.crc32(b"length:" + prompt.encode("utf-8", "replace"))
    return NATURAL_LENGTHS[seed % len(NATURAL_LENGTHS)]


def _iter_tokens(prompt: str, count: int, *, complete: bool = True) -> Iterator[str]:
    """``count`` words; ``complete``: the last one ends the sentence with a period."""
    rng = random.Random(zlib.crc32(prompt.encode("utf-8", "replace")))
    for i in range(count):
        word = rng.choice(_WORDS)
        token = word.capitalize() if i == 0 else " " + word
        yield token + "." if complete and i == count - 1 else token


def demo_tokens(prompt: str, max_tokens: int | None = None, *, tokens: int | None = None) -> list[str]:
    """The demo model's tokens for ``prompt``: the same prompt, the same text.

    ``answer_length(prompt)`` tokens ending with a period, or the first ``max_tokens`` of them
    when that limit is lower (cut mid-sentence); ``tokens`` forces the length, as the
    ``tokens=N`` knob does.
    """
    count, complete = _length(prompt, max_tokens, tokens)
    return list(_iter_tokens(prompt, count, complete=complete))


def _length(prompt: str, max_tokens: int | None, forced: int | None) -> tuple[int, bool]:
    """``(count, complete)``: the answer's tokens, and whether it ends on its own."""
    if forced is not None:
        return forced, True
    natural = answer_length(prompt)
    if max_tokens is not None and max_tokens < natural:
        return max_tokens, False
    return natural, True


def _generate(
    prompt: str, count: int, stop: list[str], *, keep_stop: bool, complete: bool
) -> Iterator[tuple[str, bool]]:
    """``(piece, stopped)`` per token, ending at the first stop sequence.

    The piece of the token that completes a stop sequence ends before it (OpenAI) or includes
    it (TGI, ``keep_stop``); ``stopped`` is True on that last piece.
    """
    if not stop:
        for token in _iter_tokens(prompt, count, complete=complete):
            yield token, False
        return
    longest = max(len(s) for s in stop)
    tail = ""
    for token in _iter_tokens(prompt, count, complete=complete):
        window = tail + token
        hits = [i for s in stop if (i := window.find(s)) != -1 and i + len(s) > len(tail)]
        if hits:
            at = min(hits)
            if keep_stop:
                end = next(at + len(s) for s in stop if window.find(s) == at)
                yield window[len(tail) : max(len(tail), end)], True
            else:
                yield window[len(tail) : max(len(tail), at)], True
            return
        yield token, False
        tail = window[-(longest - 1) :] if longest > 1 else ""


def demo_format(request: ModelRequest, prompt: DemoPrompt, default: str | None = None) -> str:
    """The shape of the answer.

    A ``messages`` request gets the chat shapes (chunks when streaming, unless the body says
    ``"stream": false``). Otherwise, in order: the ``format=`` knob, the body's ``"stream"``
    flag (true: TGI events, false: JSON), the Accept type, the endpoint's default format, then
    plain text on streams and JSON on InvokeEndpoint.
    """
    if prompt.chat:
        streaming = prompt.stream if prompt.stream is not None else request.streaming
        return "chat-sse" if streaming else "chat"
    if request.knobs.format:
        return request.knobs.format
    if prompt.stream is not None:
        return "sse" if prompt.stream else "json"
    accept = (request.accept or "").split(";", 1)[0].strip().lower()
    fmt = _ACCEPT_FORMATS.get(accept)
    if fmt is not None and not (fmt == "json" and request.streaming):
        return fmt
    if default is not None:
        return default
    return "text" if request.streaming else "json"


def _token_id(text: str) -> int:
    return zlib.crc32(text.encode()) % 32000


def _logprob(index: int, text: str) -> float:
    return -round((zlib.crc32(f"{index}{text}".encode()) % 5000) / 1000.0, 3)


def _with_last(pieces: Iterator[tuple[str, bool]]) -> Iterator[tuple[int, str, bool]]:
    """``(index, piece, is_last)``: one piece of lookahead."""
    previous: str | None = None
    index = 0
    for piece, _ in pieces:
        if previous is not None:
            yield index, previous, False
            index += 1
        previous = piece
    if previous is not None:
        yield index, previous, True


class _Answer:
    """One answer's pieces, rendered in one format, with what the chat shapes report."""

    def __init__(self, request: ModelRequest, prompt: DemoPrompt, fmt: str) -> None:
        self.count, self.complete = _length(prompt.prompt, prompt.max_tokens, request.knobs.tokens)
        self.prompt = prompt
        self.fmt = fmt
        self.stopped = False
        self.emitted = 0
        self.model = prompt.model or request.endpoint

    def _pieces(self) -> Iterator[tuple[str, bool]]:
        keep_stop = not self.fmt.startswith("chat")
        for piece, stopped in _generate(
            self.prompt.prompt, self.count, self.prompt.stop, keep_stop=keep_stop, complete=self.complete
        ):
            self.stopped = self.stopped or stopped
            if piece:
                self.emitted += 1
                yield piece, stopped

    @property
    def finish_reason(self) -> str:
        """``length`` when ``max_tokens`` cut the answer, ``stop`` when it ended on its own."""
        return "stop" if self.complete or self.stopped else "length"

    def parts(self) -> Iterator[bytes]:
        """The payload parts of the answer, generated as they are asked for."""
        if self.fmt == "text":
            for piece, _ in self._pieces():
                yield piece.encode()
        elif self.fmt == "json":
            yield json.dumps([{"generated_text": "".join(p for p, _ in self._pieces())}]).encode()
        elif self.fmt == "chat":
            yield self._completion()
        elif self.fmt == "chat-sse":
            yield from self._chunks()
        else:
            yield from self._token_events()

    def _token_events(self) -> Iterator[bytes]:
        text: list[str] = []
        for i, piece, last in _with_last(self._pieces()):
            text.append(piece)
            token = {"id": _token_id(piece), "text": piece}
            if self.fmt == "sse":
                doc = {
                    "token": {**token, "logprob": _logprob(i, piece), "special": False},
                    "generated_text": "".join(text) if last else None,
                    "details": None,
                }
                yield b"data: " + json.dumps(doc).encode() + b"\n\n"
            else:
                line: dict[str, object] = {"token": {**token, "log_prob": _logprob(i, piece)}}
                if last:
                    line["generated_text"] = "".join(text)
                yield json.dumps(line).encode() + b"\n"

    def _usage(self) -> dict[str, int]:
        prompt_tokens = len(self.prompt.prompt.split())
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": self.emitted,
            "total_tokens": prompt_tokens + self.emitted,
        }

    def _completion(self) -> bytes:
        text = "".join(p for p, _ in self._pieces())
        doc = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self._usage(),
        }
        return json.dumps(doc).encode()

    def _chunks(self) -> Iterator[bytes]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }
        usage = self.prompt.include_usage

        def event(delta: dict[str, str], finish: str | None) -> bytes:
            doc: dict[str, object] = {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if usage:  # with include_usage, every chunk has the field, null but the last
                doc["usage"] = None
            return b"data: " + json.dumps(doc).encode() + b"\n\n"

        yield event({"role": "assistant", "content": ""}, None)
        for piece, _ in self._pieces():
            yield event({"content": piece}, None)
        yield event({}, self.finish_reason)
        if usage:
            doc = {**base, "choices": [], "usage": self._usage()}
            yield b"data: " + json.dumps(doc).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


class DemoModel:
    """Deterministic text generation, token by token, in the formats LLM containers use.

    ``default_format`` (``text``, ``sse``, ``jsonl`` or ``json``) is the endpoint's answer
    when the request asks for no format (``--endpoint NAME=demo:FORMAT``).
    """

    name = "demo"

    def __init__(self, default_format: str | None = None) -> None:
        if default_format is not None and default_format not in FORMATS:
            raise ValueError(f"unknown demo format {default_format!r}: expected one of {', '.join(FORMATS)}")
        self.default_format = default_format
        if default_format is not None:
            self.name = f"demo:{default_format}"

    async def invoke(self, request: ModelRequest) -> ModelReply:
        """Answer one request (lazily: parts are generated as the server writes them)."""
        prompt = parse_prompt(request.body)
        fmt = demo_format(request, prompt, self.default_format)
        answer = _Answer(request, prompt, fmt)
        delay = request.knobs.delay if request.knobs.delay is not None else request.token_delay
        if not request.streaming:
            delay = 0.0
        attributes = request.custom_attributes if request.knobs.echo_attributes else None
        return ModelReply(CONTENT_TYPES[fmt], batches(answer.parts(), delay), attributes)

    async def close(self) -> None:
        """Nothing to release."""
        return None
