"""The request path sends what botocore sends: the same request, the same retries.

For each operation and a spread of parameter combinations, one call through sagestream's
request path (both clients) and one through stock boto3 reach the same recording server. The
method, path, body and every header must match, except those that differ between any two
botocore calls (the time, the invocation id, the signature itself); each signature must verify
with the emulator's SigV4 checker. Then, for answers botocore retries (429, 503, a connection
closed before the headers), both must send the same number of attempts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import warnings
from collections.abc import Callable
from typing import Any

import boto3
import botocore
import pytest
import sagestream
from _raw_server import CUT, LAST_CHUNK, RawServer, Request, Response, chunk, json_error, payload_frame
from botocore.config import Config
from sagestream import service
from sagestream.emulator import sigv4

CREDENTIALS = {"aws_access_key_id": "AKIDDIFF", "aws_secret_access_key": "diff-secret"}
REGION = "eu-west-1"
#: Headers whose values differ between any two botocore calls.
VARYING = {"x-amz-date", "amz-sdk-invocation-id", "authorization"}


def _session() -> boto3.Session:
    return boto3.Session(region_name=REGION, **CREDENTIALS)


def _config(attempts: int = 1) -> Config:
    return Config(retries={"total_max_attempts": attempts, "mode": "standard"}, read_timeout=20)


def answer(request: Request) -> Response:
    """What the service answers each operation with (a success)."""
    if request.path.endswith("/invocations-response-stream"):
        frames = [payload_frame(b"ok")]
        return Response(
            headers={"Content-Type": "application/vnd.amazon.eventstream"},
            writes=[*map(chunk, frames), LAST_CHUNK],
        )
    if request.path.endswith("/async-invocations"):
        body = json.dumps({"InferenceId": "inf-1"}).encode()
        return Response(
            status=202,
            reason="Accepted",
            headers={
                "Content-Type": "application/json",
                "X-Amzn-SageMaker-OutputLocation": "s3://b/out/inf-1.out",
                "X-Amzn-SageMaker-FailureLocation": "s3://b/fail/inf-1-error.out",
            },
            writes=[body],
            chunked=False,
            content_length=len(body),
        )
    return Response(
        headers={"Content-Type": "application/json", "x-Amzn-Invoked-Production-Variant": "AllTraffic"},
        writes=[b"{}"],
        chunked=False,
        content_length=2,
    )


def snake(name: str) -> str:
    """sagestream's keyword for a boto3 parameter name."""
    if name == "RequestTTLSeconds":
        return "request_ttl_seconds"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: (operation, boto3 parameters): from the fewest to every parameter the operation takes.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("stream", {"EndpointName": "ep", "Body": b""}),
    (
        "stream",
        {
            "EndpointName": "my-llm-2",
            "Body": b'{"inputs": "Hi \xc3\xa9", "stream": true}',
            "ContentType": "application/json",
            "Accept": "text/event-stream",
            "CustomAttributes": "k=v; trace=a b,c/d",
            "TargetVariant": "variant-1",
            "TargetContainerHostname": "container-1",
            "InferenceId": "id-1",
            "InferenceComponentName": "ic-1",
            "SessionId": "sess-1",
        },
    ),
    ("invoke", {"EndpointName": "ep", "Body": b"x" * 70_000}),
    (
        "invoke",
        {
            "EndpointName": "mme",
            "Body": b"\x00\x01binary",
            "ContentType": "application/octet-stream",
            "Accept": "application/json",
            "CustomAttributes": "c000b4f9-df62-4c85-a0bf-7c525f9104a4",
            "TargetModel": "model-b.tar.gz",
            "TargetVariant": "v2",
            "InferenceId": "id-2",
            "EnableExplanations": "`true`",
            "InferenceComponentName": "ic-2",
            "SessionId": "NEW_SESSION",
        },
    ),
    ("async", {"EndpointName": "ep", "InputLocation": "s3://bucket/in/request.json"}),
    (
        "async",
        {
            "EndpointName": "ep-async",
            "InputLocation": "s3://bucket/in/a b+c.json",
            "ContentType": "application/json",
            "Accept": "application/json",
            "CustomAttributes": "k=v",
            "InferenceId": "id-3",
            "RequestTTLSeconds": 600,
            "InvocationTimeoutSeconds": 120,
            "S3OutputPathExtension": "run-7",
            "Filename": "out.json",
        },
    ),
    # The service's 2026 members: PrefixAwareId, and InvokeEndpointAsync's input inline.
    ("stream", {"EndpointName": "ep", "Body": b"{}", "PrefixAwareId": "conversation-1"}),
    ("invoke", {"EndpointName": "ep", "Body": b"{}", "PrefixAwareId": "conv 2/a=b"}),
    ("async", {"EndpointName": "ep", "Body": b'{"inline": true}', "ContentType": "application/json"}),
]

BOTO3_METHODS = {
    "stream": "invoke_endpoint_with_response_stream",
    "invoke": "invoke_endpoint",
    "async": "invoke_endpoint_async",
}


def call_boto3(url: str, op: str, params: dict[str, Any], attempts: int = 1) -> None:
    client = _session().client("sagemaker-runtime", endpoint_url=url, config=_config(attempts))
    try:
        result = getattr(client, BOTO3_METHODS[op])(**params)
        if op == "stream":
            list(result["Body"])
    finally:
        client.close()
        # urllib3 drops, without closing it, a socket the server closed before answering; its
        # ResourceWarning is stock boto3's, not the code under test's.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def _sagestream_args(op: str, params: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    kwargs = {snake(k): v for k, v in params.items() if k not in ("EndpointName", "Body")}
    if op == "async":
        if "Body" in params:
            kwargs["body"] = params["Body"]
        return [params["EndpointName"]], kwargs
    return [params["EndpointName"], params["Body"]], kwargs


METHODS = {"stream": "invoke_stream", "invoke": "invoke", "async": "invoke_async"}


def call_sync(url: str, op: str, params: dict[str, Any], attempts: int = 1) -> None:
    args, kwargs = _sagestream_args(op, params)
    with sagestream.Client(_session(), endpoint_url=url, config=_config(attempts)) as client:
        assert client.fast_path, client.fast_path_reason
        result = getattr(client, METHODS[op])(*args, **kwargs)
        if op == "stream":
            with result:
                list(result)


def call_async(url: str, op: str, params: dict[str, Any], attempts: int = 1) -> None:
    args, kwargs = _sagestream_args(op, params)

    async def main() -> None:
        async with sagestream.AsyncClient(_session(), endpoint_url=url, config=_config(attempts)) as client:
            assert client.fast_path, client.fast_path_reason
            if op == "stream":
                async with client.invoke_stream(*args, **kwargs) as stream:
                    [p async for p in stream]
            else:
                await getattr(client, METHODS[op])(*args, **kwargs)

    asyncio.run(asyncio.wait_for(main(), 60))


CALLERS: dict[str, Callable[..., None]] = {"Client": call_sync, "AsyncClient": call_async}


def recorded(op: str, params: dict[str, Any], *calls: Callable[..., None]) -> list[Request]:
    """The request each of ``calls`` sent for one call, all to the same server."""
    with RawServer(answer) as server:
        for call in calls:
            call(server.url, op, params)
        assert len(server.requests) == len(calls)
        return list(server.requests)


def signed_scope(request: Request) -> tuple[str, str]:
    """The credential scope without its date, and the signed header names."""
    auth = request.headers["authorization"]
    credential = re.search(r"Credential=([^,]+)", auth)
    signed = re.search(r"SignedHeaders=([^,]+)", auth)
    assert credential, auth
    assert signed, auth
    key, _date, *scope = credential.group(1).split("/")
    return "/".join([key, *scope]), signed.group(1)


def verify_signature(request: Request) -> None:
    path, _, query = request.path.partition("?")
    sigv4.verify(
        method=request.method,
        raw_path=path,
        query_string=query,
        headers={k: [v] for k, v in request.headers.items()},
        body=request.body,
        credentials={CREDENTIALS["aws_access_key_id"]: CREDENTIALS["aws_secret_access_key"]},
        region=REGION,
        service="sagemaker",
    )


OPERATIONS = {
    "stream": "InvokeEndpointWithResponseStream",
    "invoke": "InvokeEndpoint",
    "async": "InvokeEndpointAsync",
}
MODEL = boto3.Session().client("sagemaker-runtime", region_name=REGION).meta.service_model


def _in_model(op: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` split into what the installed botocore's model has and what it has not yet
    (an older botocore: stock boto3 cannot send those)."""
    members = MODEL.operation_model(OPERATIONS[op]).input_shape.members
    return (
        {k: v for k, v in params.items() if k in members},
        {k: v for k, v in params.items() if k not in members},
    )


@pytest.mark.parametrize("client", list(CALLERS))
@pytest.mark.parametrize(("op", "params"), CASES, ids=[f"{op}-{len(p)}" for op, p in CASES])
def test_the_request_is_botocores(client: str, op: str, params: dict[str, Any]) -> None:
    params, lacking = _in_model(op, params)
    required = MODEL.operation_model(OPERATIONS[op]).input_shape.required_members
    if lacking and not set(required) <= set(params):
        # An inline async Body on a model where InputLocation is still required: without the
        # Body the case is no request stock boto3 can send.
        pytest.skip(
            f"botocore {botocore.__version__}'s model has no {sorted(lacking)} and requires {required}"
        )
    ours, theirs = recorded(op, params, CALLERS[client], call_boto3)
    assert (ours.method, ours.path, ours.body) == (theirs.method, theirs.path, theirs.body)
    assert {k: v for k, v in ours.headers.items() if k not in VARYING} == {
        k: v for k, v in theirs.headers.items() if k not in VARYING
    }
    assert signed_scope(ours) == signed_scope(theirs)
    verify_signature(ours)
    verify_signature(theirs)


@pytest.mark.parametrize("client", list(CALLERS))
@pytest.mark.parametrize(("op", "params"), CASES, ids=[f"{op}-{len(p)}" for op, p in CASES])
def test_members_an_older_botocore_lacks_are_sent_all_the_same(
    client: str, op: str, params: dict[str, Any]
) -> None:
    """With a botocore whose model predates a member (SessionId before 1.35.15, ...), the
    request path still sends it, under the header the service's table names."""
    _, missing = _in_model(op, params)
    if not missing:
        pytest.skip(f"botocore {botocore.__version__}'s model has every member of this case")
    (ours,) = recorded(op, params, CALLERS[client])
    table = service.OPERATIONS[OPERATIONS[op]]
    for member, value in missing.items():
        if table.members[member].location == "body":
            assert ours.body == value
        else:
            assert ours.headers[table.header(member).lower()] == str(value), member
    verify_signature(ours)


def _retried(first: Callable[[], Response]) -> Callable[[Request], Response]:
    """A server that answers ``first()`` to the first two requests, then succeeds."""
    count = {"n": 0}

    def handler(request: Request) -> Response:
        count["n"] += 1
        return first() if count["n"] <= 2 else answer(request)

    return handler


FAILURES: dict[str, Callable[[], Response]] = {
    "throttled": lambda: json_error(429, "ModelNotReadyException", "not ready"),
    "unavailable": lambda: json_error(503, "ServiceUnavailable", "try again"),
    "closed before headers": lambda: Response(head_writes=[CUT]),
}


@pytest.mark.parametrize("client", list(CALLERS))
@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("attempts", [1, 2, 3])
@pytest.mark.parametrize("op", ["stream", "invoke"])
def test_retries_are_botocores(client: str, failure: str, attempts: int, op: str) -> None:
    params = {"EndpointName": "ep", "Body": b"{}"}

    def attempts_made(call: Callable[..., None]) -> tuple[int, str | None]:
        with RawServer(_retried(FAILURES[failure])) as server:
            try:
                call(server.url, op, params, attempts)
                error = None
            except Exception as exc:
                error = type(exc).__name__
            return len(server.requests), error

    ours, ours_error = attempts_made(CALLERS[client])
    theirs, theirs_error = attempts_made(call_boto3)
    assert ours == theirs
    assert (ours_error is None) == (theirs_error is None)


def _attempt_headers(request: Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k not in VARYING and k != "host"}
    # botocore adds ttl= (from the answer's Date) on retries: a time, different per run.
    headers["amz-sdk-request"] = re.sub(r"ttl=[^;]*; ", "", headers.get("amz-sdk-request", ""))
    return headers


@pytest.mark.parametrize("client", list(CALLERS))
@pytest.mark.parametrize("mode", ["legacy", "standard", "adaptive"])
@pytest.mark.parametrize("op", ["stream", "invoke"])
def test_every_attempt_is_botocores(client: str, mode: str, op: str) -> None:
    """Each attempt of a retried call, headers and all (``amz-sdk-request: attempt=N; max=M``),
    in every retry mode."""
    params = {"EndpointName": "ep", "Body": b"{}"}
    config = Config(retries={"total_max_attempts": 3, "mode": mode}, read_timeout=20)

    def sent(call: Callable[..., None]) -> list[dict[str, str]]:
        with RawServer(_retried(FAILURES["unavailable"])) as server:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(f"{__name__}._config", lambda attempts=1: config)
                call(server.url, op, params, 3)
            return [_attempt_headers(r) for r in server.requests]

    ours, theirs = sent(CALLERS[client]), sent(call_boto3)
    assert len(ours) == len(theirs) == 3
    assert ours == theirs
