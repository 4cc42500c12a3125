"""Stateful sessions, as botocore's sagemaker-runtime model describes them."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sagestream.emulator import Emulator


def _new_session(client: Any, endpoint: str = "demo") -> tuple[str, dt.datetime]:
    resp = client.invoke_endpoint(EndpointName=endpoint, Body=b"x", SessionId="NEW_SESSION")
    resp["Body"].read()
    value = resp["NewSessionId"]
    # The pattern of the service model's NewSessionId shape.
    assert re.fullmatch(
        r"[a-zA-Z0-9](-*[a-zA-Z0-9])*;\sExpires=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", value
    )
    session_id, _, expires = value.partition("; Expires=")
    return session_id, dt.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def test_new_session_then_reuse_on_both_operations(runtime_client: Any) -> None:
    session_id, expires = _new_session(runtime_client)
    now = dt.datetime.now(dt.timezone.utc)
    assert now + dt.timedelta(minutes=10) < expires < now + dt.timedelta(hours=2)
    resp = runtime_client.invoke_endpoint(EndpointName="demo", Body=b"x", SessionId=session_id)
    assert resp["Body"].read()
    assert "NewSessionId" not in resp and "ClosedSessionId" not in resp
    stream = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"x", SessionId=session_id
    )
    assert [e["PayloadPart"]["Bytes"] for e in stream["Body"]]


def test_unknown_session_is_a_validation_error(runtime_client: Any) -> None:
    for call in (runtime_client.invoke_endpoint, runtime_client.invoke_endpoint_with_response_stream):
        with pytest.raises(ClientError) as info:
            call(EndpointName="demo", Body=b"x", SessionId="no-such-session")
        assert info.value.response["Error"]["Code"] == "ValidationError"
        assert "no-such-session" in info.value.response["Error"]["Message"]


def test_streaming_cannot_create_a_session(runtime_client: Any) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="demo", Body=b"x", SessionId="NEW_SESSION"
        )
    assert info.value.response["Error"]["Code"] == "ValidationError"


@pytest.mark.parametrize("how", ["custom-attributes", "close-request"])
def test_close_session(runtime_client: Any, how: str) -> None:
    session_id, _ = _new_session(runtime_client, "echo")
    if how == "custom-attributes":
        resp = runtime_client.invoke_endpoint(
            EndpointName="echo", Body=b"bye", SessionId=session_id, CustomAttributes="session=close"
        )
    else:
        resp = runtime_client.invoke_endpoint(
            EndpointName="echo",
            Body=json.dumps({"requestType": "CLOSE"}),
            ContentType="application/json",
            SessionId=session_id,
        )
    resp["Body"].read()
    assert resp["ClosedSessionId"] == session_id
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint(EndpointName="echo", Body=b"x", SessionId=session_id)
    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_session_expires() -> None:
    import time

    with Emulator(session_ttl=0.5) as emu:
        client = emu.boto3_client()
        session_id, _ = _new_session(client)
        client.invoke_endpoint(EndpointName="demo", Body=b"x", SessionId=session_id)["Body"].read()
        time.sleep(0.6)
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint(EndpointName="demo", Body=b"x", SessionId=session_id)
        assert info.value.response["Error"]["Code"] == "ValidationError"
