"""``extra=``: a member botocore's installed model has and sagestream has no keyword for yet.

The day the service adds a header, botocore's model has it before sagestream has a keyword.
Here that day is made with a model of our own (``AWS_DATA_PATH``, which botocore reads first):
InvokeEndpoint gains ``SomeNewHeader``. Both clients, on the request path and on botocore's own,
must send it as stock boto3 does, checked against the model's constraints; a name neither the
table nor the model knows is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import pytest
import sagestream
from _raw_server import RawServer
from sagestream import service
from sagestream.exceptions import FallbackWarning, ParamValidationError
from test_request_differential import CREDENTIALS, REGION, VARYING, answer, verify_signature

NEW_HEADER = "X-Amzn-SageMaker-Some-New-Header"


@pytest.fixture
def newer_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """botocore's model of sagemaker-runtime with InvokeEndpoint's SomeNewHeader (1-16
    lower-case letters), found first by every botocore session made while it is on."""
    loader = botocore.loaders.create_loader()
    document = copy.deepcopy(loader.load_service_model("sagemaker-runtime", "service-2"))
    version = document["metadata"]["apiVersion"]
    shape = document["operations"]["InvokeEndpoint"]["input"]["shape"]
    document["shapes"]["SomeNewHeaderValue"] = {"type": "string", "min": 1, "max": 16, "pattern": "^[a-z]+$"}
    document["shapes"][shape]["members"]["SomeNewHeader"] = {
        "shape": "SomeNewHeaderValue",
        "location": "header",
        "locationName": NEW_HEADER,
    }
    folder = tmp_path / "sagemaker-runtime" / version
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(document))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    service._model_members.cache_clear()
    yield
    service._model_members.cache_clear()


def _session() -> boto3.Session:
    return boto3.Session(region_name=REGION, **CREDENTIALS)


def _user_hook(**_: Any) -> None:
    """A handler of the user's: it sends the client's calls down botocore's path."""


def _sync(url: str, botocores_path: bool) -> None:
    with sagestream.Client(_session(), endpoint_url=url) as client:
        if botocores_path:
            client.runtime_client.meta.events.register("before-call.sagemaker-runtime", _user_hook)
            with pytest.warns(FallbackWarning):
                assert not client.fast_path
        else:
            assert client.fast_path, client.fast_path_reason
        client.invoke("ep", b"{}", extra={"SomeNewHeader": "abc"})


def _async(url: str, botocores_path: bool) -> None:
    async def main() -> None:
        async with sagestream.AsyncClient(_session(), endpoint_url=url) as client:
            if botocores_path:
                client.runtime_client.meta.events.register("before-call.sagemaker-runtime", _user_hook)
                with pytest.warns(FallbackWarning):
                    assert not client.fast_path
            else:
                assert client.fast_path, client.fast_path_reason
            await client.invoke("ep", b"{}", extra={"SomeNewHeader": "abc"})

    asyncio.run(asyncio.wait_for(main(), 60))


def _boto3(url: str) -> None:
    client = _session().client("sagemaker-runtime", endpoint_url=url)
    client.invoke_endpoint(EndpointName="ep", Body=b"{}", SomeNewHeader="abc")
    client.close()


@pytest.mark.usefixtures("newer_model")
@pytest.mark.parametrize("botocores_path", [False, True], ids=["request path", "botocore's path"])
@pytest.mark.parametrize("call", [_sync, _async], ids=["Client", "AsyncClient"])
def test_a_member_only_the_model_has_is_sent_as_boto3_sends_it(call: Any, botocores_path: bool) -> None:
    with RawServer(answer) as server:
        call(server.url, botocores_path)
        _boto3(server.url)
        ours, theirs = server.requests
    assert ours.headers[NEW_HEADER.lower()] == "abc"
    assert {k: v for k, v in ours.headers.items() if k not in VARYING} == {
        k: v for k, v in theirs.headers.items() if k not in VARYING
    }
    verify_signature(ours)


@pytest.mark.usefixtures("newer_model")
def test_the_models_constraints_hold() -> None:
    client = sagestream.Client(_session(), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ParamValidationError, match="SomeNewHeader"):
        client.invoke("ep", b"{}", extra={"SomeNewHeader": "UPPER"})
    with pytest.raises(ParamValidationError, match="at most 16"):
        client.invoke("ep", b"{}", extra={"SomeNewHeader": "a" * 17})
    with pytest.raises(ParamValidationError, match="must be a str"):
        client.invoke("ep", b"{}", extra={"SomeNewHeader": 12})
    # InvokeEndpointWithResponseStream did not gain it.
    with pytest.raises(ParamValidationError, match="not a member of InvokeEndpointWithResponseStream"):
        client.invoke_stream("ep", b"{}", extra={"SomeNewHeader": "abc"})


def test_unknown_names_are_refused_before_sending() -> None:
    client = sagestream.Client(_session(), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ParamValidationError, match="NoSuchHeader is not a member of InvokeEndpoint"):
        client.invoke("ep", b"{}", extra={"NoSuchHeader": "x"})
    with pytest.raises(ParamValidationError, match="is the body argument"):
        client.invoke("ep", b"{}", extra={"Body": b"x"})
    with pytest.raises(ParamValidationError, match="given twice"):
        client.invoke("ep", b"{}", custom_attributes="a", extra={"CustomAttributes": "b"})

    async def main() -> None:
        client = sagestream.AsyncClient(_session(), endpoint_url="http://127.0.0.1:9")
        with pytest.raises(ParamValidationError, match="NoSuchHeader"):
            await client.invoke("ep", b"{}", extra={"NoSuchHeader": "x"})
        with pytest.raises(ParamValidationError, match="NoSuchHeader"):
            await client.invoke_async("ep", input_location="s3://b/k", extra={"NoSuchHeader": "x"})
        await client.close()

    asyncio.run(main())


def test_a_row_of_the_table_may_come_through_extra_too() -> None:
    """Code written with extra= before sagestream had the keyword keeps working after."""
    with RawServer(answer) as server:
        with sagestream.Client(_session(), endpoint_url=server.url) as client:
            client.invoke("ep", b"{}", extra={"PrefixAwareId": "conversation-1"})
        (request,) = server.requests
    assert request.headers["x-amzn-sagemaker-prefix-aware-id"] == "conversation-1"
