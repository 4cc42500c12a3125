"""Strands Agents on sagestream: a model provider for SageMaker endpoints.

``pip install 'sagestream[strands]'``. :class:`SageMakerAIModel` carries the name and the
arguments of Strands' own SageMaker provider (it builds its requests with that provider's
formatting, so endpoints receive exactly what Strands sends), and streams on
:class:`sagestream.AsyncClient`: no thread per request or per token::

    from sagestream.integrations.strands import SageMakerAIModel   # was: strands.models.sagemaker
    from strands import Agent

    model = SageMakerAIModel(endpoint_config={"endpoint_name": "my-llm", "region_name": "us-east-1"},
                             payload_config={"max_tokens": 512})
    agent = Agent(model=model)

Besides Strands' arguments it takes ``endpoint_name=``, and ``client=`` (a
:class:`sagestream.AsyncClient`) or the client's keyword arguments (``region_name=``,
``endpoint_url=``, ``config=``, credentials, ``verify=``). Endpoints serve OpenAI-compatible
chat (LMI / vLLM, TGI's Messages API): text, reasoning and tool calls are read from
``chat.completion.chunk`` events, usage (asked for with ``stream_options.include_usage``
unless ``stream_usage=False``) and the finish reason become Strands' ``metadata`` and
``messageStop`` events. A 429 (``ModelNotReadyException``) is raised as Strands'
``ModelThrottledException`` (so the agent backs off and retries), the sagestream error as its
cause; every other error is sagestream's typed exception, after the events already yielded.
``cancel_signal`` closes the stream at once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any, TypeVar, cast

from botocore.config import Config
from pydantic import BaseModel
from strands.models.sagemaker import SageMakerAIModel as _StrandsSageMakerAIModel
from strands.types.content import Messages
from strands.types.exceptions import ModelThrottledException
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolChoice, ToolSpec

from sagestream import observe
from sagestream.exceptions import ModelNotReadyException
from sagestream.integrations._clients import Clients
from sagestream.integrations._formats import Delta, DocumentDecoder, chat_completion, chat_delta
from sagestream.integrations._requests import call_parameters

__all__ = ["SageMakerAIModel"]

T = TypeVar("T", bound=BaseModel)

#: What Strands' provider adds to the User-Agent.
_USER_AGENT = "strands-agents"


def _usage_event(usage: dict[str, Any], latency_ms: int) -> StreamEvent:
    return {
        "metadata": {
            "usage": {
                "inputTokens": int(usage.get("prompt_tokens") or 0),
                "outputTokens": int(usage.get("completion_tokens") or 0),
                "totalTokens": int(usage.get("total_tokens") or 0),
            },
            "metrics": {"latencyMs": latency_ms},
        }
    }


def _stop_reason(finish_reason: str | None, tool_calls: bool) -> str:
    if tool_calls or finish_reason == "tool_calls":
        return "tool_use"
    return {"length": "max_tokens", "content_filter": "content_filtered"}.get(finish_reason or "", "end_turn")


def _arguments(call: dict[str, Any]) -> str:
    arguments = (call.get("function") or {}).get("arguments")
    if arguments is None:
        return ""
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _tool_events(index: int, deltas: list[dict[str, Any]]) -> list[StreamEvent]:
    """A tool call's content block: its start (name, id), its input pieces, its stop."""
    first = deltas[0]
    name = (first.get("function") or {}).get("name")
    if not name:
        raise ValueError(f"the endpoint streamed tool call {index} without a function name: {first}")
    events: list[StreamEvent] = [
        {"contentBlockStart": {"start": {"toolUse": {"name": name, "toolUseId": str(first.get("id") or "")}}}}
    ]
    events.extend({"contentBlockDelta": {"delta": {"toolUse": {"input": _arguments(d)}}}} for d in deltas)
    events.append({"contentBlockStop": {}})
    return events


def _note_usage(note: observe.Annotation | None, turn: _Turn) -> None:
    """Report the usage the container sent to an instrumentation's ``note``."""
    if note is not None and turn.usage:
        note.usage(turn.usage.get("prompt_tokens"), turn.usage.get("completion_tokens"))


class _Turn:
    """One turn's answer, step by step, as Strands' events."""

    __slots__ = ("block", "finish", "started", "tool_calls", "usage")

    def __init__(self, started: float) -> None:
        self.started = started
        self.block: str | None = None  # the open content block: "text" or "reasoning"
        self.tool_calls: dict[int, list[dict[str, Any]]] = {}
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None

    def _open(self, kind: str, events: list[StreamEvent]) -> None:
        if self.block != kind:
            if self.block is not None:
                events.append({"contentBlockStop": {}})
            events.append({"contentBlockStart": {"start": {}}})
            self.block = kind

    def events(self, delta: Delta | None) -> list[StreamEvent]:
        """The events of one step (after the finish reason, only its usage counts)."""
        if delta is None:
            return []
        if delta.usage:
            self.usage = delta.usage
        if self.finish is not None:
            return []
        events: list[StreamEvent] = []
        if delta.reasoning:
            self._open("reasoning", events)
            events.append({"contentBlockDelta": {"delta": {"reasoningContent": {"text": delta.reasoning}}}})
        if delta.text:
            self._open("text", events)
            events.append({"contentBlockDelta": {"delta": {"text": delta.text}}})
        if delta.tool_calls:
            for position, call in enumerate(delta.tool_calls):
                index = call.get("index")
                self.tool_calls.setdefault(index if isinstance(index, int) else position, []).append(call)
        if delta.finish_reason is not None:
            self.finish = delta.finish_reason
        return events

    def ending(self) -> list[StreamEvent]:
        """The open block's stop, the tool calls, the message's stop, the usage."""
        events: list[StreamEvent] = []
        if self.block is not None:
            events.append({"contentBlockStop": {}})
        for index in sorted(self.tool_calls):
            events.extend(_tool_events(index, self.tool_calls[index]))
        if self.block is None and not self.tool_calls:
            # Strands expects a content block, even an empty one.
            events.extend(({"contentBlockStart": {"start": {}}}, {"contentBlockStop": {}}))
        stop = cast(Any, _stop_reason(self.finish, bool(self.tool_calls)))
        events.append({"messageStop": {"stopReason": stop}})
        if self.usage:
            events.append(_usage_event(self.usage, int((time.monotonic() - self.started) * 1000)))
        return events


class SageMakerAIModel(_StrandsSageMakerAIModel):
    """Strands' SageMaker model provider, streaming on :class:`sagestream.AsyncClient`.

    ``endpoint_config`` and ``payload_config`` are Strands' (``endpoint_name``,
    ``region_name``, ``inference_component_name``, ``target_variant``, ``additional_args``;
    ``max_tokens``, ``stream``, ``temperature``, ``stop``, ...); ``boto_session`` and
    ``boto_client_config`` too. ``endpoint_name=`` and ``region_name=`` may be given as
    keywords instead.
    """

    def __init__(
        self,
        endpoint_config: _StrandsSageMakerAIModel.SageMakerAIEndpointConfig | None = None,
        payload_config: _StrandsSageMakerAIModel.SageMakerAIPayloadSchema | None = None,
        boto_session: Any = None,
        boto_client_config: Config | None = None,
        *,
        endpoint_name: str | None = None,
        client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        config: Config | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        verify: bool | str | None = None,
        stream_usage: bool = True,
    ) -> None:
        # Strands' own __init__ is not called: it makes a boto3 client this provider does not use.
        endpoint: dict[str, Any] = dict(endpoint_config or {})
        if endpoint_name is not None:
            endpoint["endpoint_name"] = endpoint_name
        if region_name is not None:
            endpoint["region_name"] = region_name
        if "endpoint_name" not in endpoint:
            raise TypeError("SageMakerAIModel needs an endpoint name (endpoint_name= or endpoint_config)")
        payload: dict[str, Any] = dict(payload_config or {})
        payload.setdefault("stream", True)
        payload.setdefault("tool_results_as_user_messages", False)
        self.endpoint_config = cast(_StrandsSageMakerAIModel.SageMakerAIEndpointConfig, endpoint)
        self.payload_config = cast(_StrandsSageMakerAIModel.SageMakerAIPayloadSchema, payload)
        #: Ask for usage in the last chunk of a stream (``stream_options.include_usage``).
        self.stream_usage = stream_usage
        if client is None:
            config = config if config is not None else boto_client_config
            extra = getattr(config, "user_agent_extra", None) if config is not None else None
            agent = Config(user_agent_extra=f"{extra} {_USER_AGENT}" if extra else _USER_AGENT)
            config = config.merge(agent) if config is not None else agent
            region = endpoint.get("region_name") or (
                None if boto_session is not None else os.getenv("AWS_REGION") or "us-west-2"
            )
            self._clients = Clients(
                session=boto_session,
                region_name=region,
                endpoint_url=endpoint_url,
                config=config,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
                verify=verify,
            )
        else:
            self._clients = Clients(client)

    # --- the request -------------------------------------------------------------------------

    def _call(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None,
        system_prompt: str | None,
        *,
        stream: bool,
    ) -> tuple[str, bytes, dict[str, Any]]:
        """The endpoint, the body Strands' formatting makes, and the client's keywords."""
        request = self.format_request(messages, tool_specs, system_prompt)
        return self._parts_of(request, stream=stream)

    def _parts_of(self, request: dict[str, Any], *, stream: bool) -> tuple[str, bytes, dict[str, Any]]:
        body = request.pop("Body")
        endpoint = request.pop("EndpointName")
        if stream and self.stream_usage:
            doc = json.loads(body)
            doc.setdefault("stream_options", {"include_usage": True})
            body = json.dumps(doc)
        data = body.encode() if isinstance(body, str) else bytes(body)
        return endpoint, data, call_parameters(request, stream=stream)

    # --- streaming -----------------------------------------------------------------------------

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: ToolChoice | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream one turn of the conversation as Strands' events (``tool_choice`` is not
        supported by SageMaker endpoints and is ignored, as by Strands' own provider)."""
        cancel: threading.Event | None = kwargs.get("cancel_signal")
        streaming = bool(self.payload_config.get("stream", True))
        endpoint, body, params = self._call(messages, tool_specs, system_prompt, stream=streaming)
        started = time.monotonic()
        try:
            client = await self._clients.for_running_loop()
            turn = _Turn(started)
            with observe.annotate("chat") as note:
                if not streaming:
                    result = await client.invoke(endpoint, body, **params)
                    yield {"messageStart": {"role": "assistant"}}
                    for event in turn.events(chat_completion(json.loads(result.body))):
                        yield event
                    _note_usage(note, turn)
                    for event in turn.ending():
                        yield event
                    return
                async with client.invoke_stream(endpoint, body, **params) as response:
                    yield {"messageStart": {"role": "assistant"}}
                    # The parts are read and decoded here: no async generator stands between the
                    # transport and this one.
                    decoder = DocumentDecoder(response.content_type)
                    async for part in response:
                        if cancel is not None and cancel.is_set():
                            return  # Strands reports the cancellation; the stream closes on the way out
                        for doc in decoder.feed(part):
                            for event in turn.events(chat_delta(doc)):
                                yield event
                    for doc in decoder.finish():
                        for event in turn.events(chat_delta(doc)):
                            yield event
                _note_usage(note, turn)
            for event in turn.ending():
                yield event
        except ModelNotReadyException as exc:
            raise ModelThrottledException(str(exc)) from exc

    # --- structured output ---------------------------------------------------------------------

    async def structured_output(
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Ask for JSON matching ``output_model`` (a ``json_schema`` response format) in one
        InvokeEndpoint call; yields ``{"output": instance}``. ValueError when the answer is not
        such JSON."""
        request = self.format_request(prompt, system_prompt=system_prompt)
        doc = json.loads(request["Body"])
        doc["stream"] = False
        doc["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": output_model.__name__,
                "schema": output_model.model_json_schema(),
                "strict": True,
            },
        }
        request["Body"] = json.dumps(doc)
        endpoint, body, params = self._parts_of(request, stream=False)
        try:
            client = await self._clients.for_running_loop()
            with observe.annotate("chat") as note:
                result = await client.invoke(endpoint, body, **params)
                answer = chat_completion(json.loads(result.body))
                if note is not None and answer.usage:
                    note.usage(answer.usage.get("prompt_tokens"), answer.usage.get("completion_tokens"))
        except ModelNotReadyException as exc:
            raise ModelThrottledException(str(exc)) from exc
        if not answer.text:
            raise ValueError("the endpoint's answer has no content to parse as structured output")
        try:
            output = output_model.model_validate_json(answer.text)
        except ValueError as exc:
            raise ValueError(f"the endpoint's answer does not match {output_model.__name__}: {exc}") from exc
        yield {"output": output}
