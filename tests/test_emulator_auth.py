"""SigV4 verification and server-side validation, seen from stock boto3."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import botocore.auth
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from sagestream.emulator import Emulator
from sagestream.emulator.sigv4 import canonical_request

_NO_RETRY = Config(retries={"total_max_attempts": 1})


def _client(emulator: Emulator, **overrides: Any) -> Any:
    kwargs = {
        "aws_access_key_id": emulator.access_key_id,
        "aws_secret_access_key": emulator.secret_access_key,
        "region_name": emulator.region,
    }
    kwargs.update(overrides)
    return boto3.session.Session(**kwargs).client(
        "sagemaker-runtime", endpoint_url=emulator.url, config=_NO_RETRY
    )


def _auth_error(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call()
    response: dict[str, Any] = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return response


OPERATIONS = [
    lambda c: c.invoke_endpoint(EndpointName="demo", Body=b"x"),
    lambda c: c.invoke_endpoint_with_response_stream(EndpointName="demo", Body=b"x"),
    lambda c: c.invoke_endpoint_async(EndpointName="demo", InputLocation="s3://b/k"),
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_wrong_secret_is_invalid_signature(emulator: Emulator, operation: Any) -> None:
    client = _client(emulator, aws_secret_access_key="not-the-secret")
    response = _auth_error(lambda: operation(client))
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert response["Error"]["Message"].startswith("The request signature we calculated does not match")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_unknown_access_key(emulator: Emulator, operation: Any) -> None:
    client = _client(emulator, aws_access_key_id="AKIDUNKNOWN")
    response = _auth_error(lambda: operation(client))
    assert response["Error"]["Code"] == "UnrecognizedClientException"
    assert response["Error"]["Message"] == "The security token included in the request is invalid."


@pytest.mark.parametrize("minutes", [-6, 6])
def test_stale_or_future_timestamp(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, minutes: int) -> None:
    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real() + dt.timedelta(minutes=minutes))
    response = _auth_error(lambda: _client(emulator).invoke_endpoint(EndpointName="demo", Body=b"x"))
    assert response["Error"]["Code"] == "InvalidSignatureException"
    expected = "Signature expired" if minutes < 0 else "Signature not yet current"
    assert response["Error"]["Message"].startswith(expected)


def test_small_clock_skew_is_accepted(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real() - dt.timedelta(minutes=4))
    assert _client(emulator).invoke_endpoint(EndpointName="demo", Body=b"x")["Body"].read()


def test_wrong_region_scope(emulator: Emulator) -> None:
    response = _auth_error(
        lambda: _client(emulator, region_name="eu-west-1").invoke_endpoint(EndpointName="demo", Body=b"x")
    )
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert "region" in response["Error"]["Message"]


def test_tampered_body_and_header(emulator: Emulator) -> None:
    client = _client(emulator)

    def tamper_body(request: Any, **_: Any) -> None:
        request.body = b"tampered"
        request.headers["Content-Length"] = str(len(request.body))

    def tamper_header(request: Any, **_: Any) -> None:
        request.headers["X-Amzn-SageMaker-Custom-Attributes"] = "format=sse"

    for hook in (tamper_body, tamper_header):
        client.meta.events.register_first("before-send.sagemaker-runtime.*", hook)
        try:
            response = _auth_error(
                lambda: client.invoke_endpoint(EndpointName="demo", Body=b"x", CustomAttributes="format=text")
            )
        finally:
            client.meta.events.unregister("before-send.sagemaker-runtime.*", hook)
        assert response["Error"]["Code"] == "InvalidSignatureException"


def test_missing_authorization(emulator: Emulator) -> None:
    client = boto3.session.Session(region_name=emulator.region).client(
        "sagemaker-runtime",
        endpoint_url=emulator.url,
        config=Config(signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1}),
    )
    for operation in OPERATIONS:
        response = _auth_error(lambda operation=operation: operation(client))
        assert response["Error"]["Code"] == "MissingAuthenticationTokenException"
        assert response["Error"]["Message"] == "Missing Authentication Token"


def test_auth_error_wire_format(emulator: Emulator) -> None:
    with urllib3.PoolManager() as pool:
        resp = pool.request("POST", f"{emulator.url}/endpoints/demo/invocations", body=b"x")
    assert resp.status == 403
    assert resp.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"message": "Missing Authentication Token"}


def test_canonical_request_matches_botocore() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:1234/endpoints/my-endpoint/invocations",
        data=b"hello",
        headers={"X-Amzn-SageMaker-Custom-Attributes": "a=1;  b=2", "Content-Type": "text/plain"},
    )
    signer = SigV4Auth(Credentials("AK", "SK"), "sagemaker", "us-east-1")
    request.context["timestamp"] = "20260101T000000Z"
    signer._modify_request_before_signing(request)
    expected = signer.canonical_request(request)
    names = tuple(sorted(k.lower() for k in signer.headers_to_sign(request)))
    headers = {k.lower(): [v] for k, v in request.headers.items()}
    headers["host"] = ["127.0.0.1:1234"]
    ours = canonical_request("POST", "/endpoints/my-endpoint/invocations", "", headers, names, _sha(b"hello"))
    assert ours == expected


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --- validation ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unvalidated(emulator: Emulator) -> Any:
    """botocore checks lengths and ranges too; turn that off to reach the server's checks."""
    return emulator.boto3_client(config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))


def _validation_error(call: Any) -> str:
    with pytest.raises(ClientError) as info:
        call()
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(info.value.response["Error"]["Message"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"CustomAttributes": "x" * 1025},
        {"CustomAttributes": "caf\u00e9"},
        {"InferenceId": "x" * 65},
        {"InferenceId": "tab\tinside"},
        {"TargetContainerHostname": "bad_host"},
        {"InferenceComponentName": "bad_"},
        {"Accept": "x" * 1025},
    ],
)
def test_header_validation(unvalidated: Any, kwargs: dict[str, str]) -> None:
    _validation_error(lambda: unvalidated.invoke_endpoint(EndpointName="demo", Body=b"x", **kwargs))


def test_control_characters_in_headers_are_rejected(unvalidated: Any) -> None:
    # aiohttp's HTTP parser refuses them before any handler runs: a plain 400.
    with pytest.raises(ClientError) as info:
        unvalidated.invoke_endpoint(EndpointName="demo", Body=b"x", CustomAttributes="bell\x07")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_endpoint_name_validation(unvalidated: Any) -> None:
    message = _validation_error(lambda: unvalidated.invoke_endpoint(EndpointName="a" * 64, Body=b"x"))
    assert "endpointName" in message
    message = _validation_error(lambda: unvalidated.invoke_endpoint(EndpointName="bad--", Body=b"x"))
    assert "endpointName" in message


def test_custom_attributes_limit_is_inclusive(runtime_client: Any) -> None:
    attrs = "echo_attributes=1;k=" + "v" * 1004
    assert len(attrs) == 1024
    assert (
        runtime_client.invoke_endpoint(EndpointName="demo", Body=b"x", CustomAttributes=attrs)[
            "CustomAttributes"
        ]
        == attrs
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"RequestTTLSeconds": 59}, "requestTTLSeconds"),
        ({"RequestTTLSeconds": 21601}, "requestTTLSeconds"),
        ({"InvocationTimeoutSeconds": 0}, "invocationTimeoutSeconds"),
        ({"InvocationTimeoutSeconds": 3601}, "invocationTimeoutSeconds"),
        ({"Filename": "f" * 33}, "filename"),
        ({"Filename": "a.b.c"}, "filename"),
        ({"S3OutputPathExtension": "s3://x"}, "s3OutputPathExtension"),
        ({"InputLocation": "ftp://bucket/key"}, "inputLocation"),
        # Neither InputLocation nor an inline Body (2026: exactly one of them).
        ({"InputLocation": None}, "InputLocation"),
    ],
)
def test_async_validation(unvalidated: Any, kwargs: dict[str, Any], field: str) -> None:
    params: dict[str, Any] = {"EndpointName": "demo", "InputLocation": "s3://bucket/key"}
    params.update(kwargs)
    params = {k: v for k, v in params.items() if v is not None}
    message = _validation_error(lambda: unvalidated.invoke_endpoint_async(**params))
    assert field in message


def test_unknown_path(emulator: Emulator) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"{emulator.url}/nothing/here")
    SigV4Auth(
        Credentials(emulator.access_key_id, emulator.secret_access_key), "sagemaker", emulator.region
    ).add_auth(request)
    with urllib3.PoolManager() as pool:
        resp = pool.request("GET", request.url, headers=dict(request.headers.items()))
    assert resp.status == 404
    assert resp.headers["x-amzn-ErrorType"] == "UnknownOperationException"


# --- the rules table, as the service answers it --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        # The model's pattern is anchored at the start only; the service matches it whole.
        ({"EndpointName": "chat\n"}, "endpointName"),
        ({"InferenceId": "\u00e9abc"}, "inferenceId"),  # Java's \S takes it; the service does not
        ({"TargetModel": "\u00e9model.tar.gz"}, "targetModel"),
        ({"SessionId": "a_b"}, "sessionId"),
        ({"EnableExplanations": "x" * 65}, "enableExplanations"),
    ],
)
def test_drifted_rules_are_the_services(unvalidated: Any, kwargs: dict[str, str], field: str) -> None:
    params = {"EndpointName": "demo", "Body": b"x", **kwargs}
    message = _validation_error(lambda: unvalidated.invoke_endpoint(**params))
    assert f"at '{field}' failed to satisfy constraint" in message


def test_every_broken_rule_is_reported_at_once(unvalidated: Any) -> None:
    message = _validation_error(
        lambda: unvalidated.invoke_endpoint(
            EndpointName="demo", Body=b"x", InferenceId="x" * 65, TargetContainerHostname="bad_host"
        )
    )
    assert message.startswith("2 validation errors detected: ")
    assert "Member must have length less than or equal to 64" in message
    assert "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*" in message


def test_sensitive_values_are_not_repeated(unvalidated: Any) -> None:
    message = _validation_error(
        lambda: unvalidated.invoke_endpoint(EndpointName="demo", Body=b"x", CustomAttributes="secret\u00e9")
    )
    assert "secret" not in message
    assert "at 'customAttributes' failed to satisfy constraint" in message
