"""The package imports, exposes its version and ships its typing markers."""

from __future__ import annotations

import pickle
from importlib import resources

import botocore.exceptions
import pytest
import sagestream
from sagestream import exceptions as exc


def test_version_comes_from_cargo() -> None:
    assert sagestream.__version__ == sagestream._core.__version__
    assert sagestream.__version__[0].isdigit()


def test_typing_markers_ship() -> None:
    files = resources.files("sagestream")
    assert (files / "py.typed").is_file()
    assert (files / "_core.pyi").is_file()


def test_service_errors_are_botocore_client_errors() -> None:
    err = exc.service_error_from_response(
        {
            "Error": {"Code": "ModelError", "Message": "bad"},
            "OriginalStatusCode": 500,
            "OriginalMessage": "boom",
            "LogStreamArn": "arn:aws:logs:x",
            "ResponseMetadata": {"HTTPStatusCode": 424},
        },
        "InvokeEndpoint",
    )
    assert isinstance(err, exc.ModelError)
    assert isinstance(err, botocore.exceptions.ClientError)
    assert (err.original_status_code, err.original_message, err.log_stream_arn) == (
        500,
        "boom",
        "arn:aws:logs:x",
    )
    assert err.status_code == 424
    unknown = exc.service_error_from_response({"Error": {"Code": "Nope"}}, "InvokeEndpoint")
    assert type(unknown) is exc.ServiceError


@pytest.mark.parametrize(
    "err",
    [
        exc.ChecksumMismatchError("crc"),
        exc.MalformedResponseError("invalid HTTP status-code parsed"),
        exc.ResponseTooLargeError("the HTTP 200 answer's body goes on", 1024),
        exc.ModelStreamError(
            {"Error": {"Code": "ModelStreamError", "Message": "m"}, "ErrorCode": "StreamBroken"},
            "InvokeEndpointWithResponseStream",
        ),
        exc.ValidationError({"Error": {"Code": "ValidationError", "Message": "v"}}, "InvokeEndpoint"),
        exc.AsyncInferenceFailed("failed", failure=b"doc", failure_location="s3://b/k"),
        exc.AsyncInferenceTimeout("late", output_location="s3://b/o", failure_location="s3://b/f"),
    ],
)
def test_exceptions_pickle(err: Exception) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert back.__dict__ == err.__dict__


def test_stream_errors_are_botocore_event_stream_errors() -> None:
    err = exc._stream_exception(
        "ModelStreamError", b'{"Message": "slow", "ErrorCode": "ModelInvocationTimeExceeded"}'
    )
    assert isinstance(err, exc.ModelStreamError)
    assert isinstance(err, botocore.exceptions.EventStreamError)
    assert err.error_code == "ModelInvocationTimeExceeded"
    assert err.message == "slow"
