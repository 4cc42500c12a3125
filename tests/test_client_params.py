"""Parameter validation: every rule of the service model is enforced before sending."""

from __future__ import annotations

import io

import pytest
from sagestream import _params as p
from sagestream.exceptions import ParamValidationError


@pytest.mark.parametrize("name", ["a", "my-endpoint", "A1--b2", "x" * 63, "0"])
def test_endpoint_name_ok(name: str) -> None:
    assert p.check_endpoint_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "a_b", "a b", "x" * 64, "é", "a.b"])
def test_endpoint_name_bad(name: str) -> None:
    with pytest.raises(ParamValidationError, match="EndpointName"):
        p.check_endpoint_name(name)


def test_endpoint_name_required_and_typed() -> None:
    with pytest.raises(ParamValidationError, match="required"):
        p.check_endpoint_name(None)
    with pytest.raises(ParamValidationError, match="must be a str"):
        p.check_endpoint_name(12)


def test_param_validation_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="RequestTTLSeconds"):
        p.check_ttl(10)


def test_custom_attributes() -> None:
    assert p.check_custom_attributes("a=1; b=two") == "a=1; b=two"
    assert p.check_custom_attributes("x" * 1024) == "x" * 1024
    with pytest.raises(ParamValidationError, match="at most 1024"):
        p.check_custom_attributes("x" * 1025)
    with pytest.raises(ParamValidationError, match="not visible US-ASCII"):
        p.check_custom_attributes("caf\u00e9")
    with pytest.raises(ParamValidationError, match="index 1"):
        p.check_custom_attributes("a\nb")


@pytest.mark.parametrize(("value", "ok"), [(0, False), (1, True), (3600, True), (3601, False), (True, False)])
def test_invocation_timeout(value: int, ok: bool) -> None:
    if ok:
        assert p.check_invocation_timeout(value) == value
    else:
        with pytest.raises(ParamValidationError, match="InvocationTimeoutSeconds"):
            p.check_invocation_timeout(value)


@pytest.mark.parametrize(("value", "ok"), [(59, False), (60, True), (21600, True), (21601, False)])
def test_ttl(value: int, ok: bool) -> None:
    if ok:
        assert p.check_ttl(value) == value
    else:
        with pytest.raises(ParamValidationError, match="RequestTTLSeconds"):
            p.check_ttl(value)
    with pytest.raises(ParamValidationError, match="must be an int"):
        p.check_ttl("60")


@pytest.mark.parametrize("value", ["out.json", "a", "A-b_c.txt", "x" * 32])
def test_filename_ok(value: str) -> None:
    assert p.check_filename(value) == value


@pytest.mark.parametrize("value", ["", "x" * 33, "a.b.c", ".hidden", "-a", "a/b", "a b"])
def test_filename_bad(value: str) -> None:
    with pytest.raises(ParamValidationError, match="Filename"):
        p.check_filename(value)


def test_inference_id() -> None:
    assert p.check_inference_id("abc 123!") == "abc 123!"
    for bad in ["", " lead", "x" * 65, "tab\there", "caf\u00e9"]:
        with pytest.raises(ParamValidationError, match="InferenceId"):
            p.check_inference_id(bad)


def test_names_from_model() -> None:
    assert p.check_target_variant("AllTraffic") == "AllTraffic"
    assert p.check_target_container_hostname("c-1") == "c-1"
    assert p.check_inference_component_name("ic-1") == "ic-1"
    checks = (p.check_target_variant, p.check_target_container_hostname, p.check_inference_component_name)
    for check in checks:
        with pytest.raises(ParamValidationError):
            check("bad_name")
        with pytest.raises(ParamValidationError):
            check("y" * 64)


def test_session_id() -> None:
    assert p.check_session_id("NEW_SESSION") == "NEW_SESSION"
    assert p.check_session_id("abc-123") == "abc-123"
    with pytest.raises(ParamValidationError, match="existing session id"):
        p.check_session_id("NEW_SESSION", allow_new=False)
    with pytest.raises(ParamValidationError, match="SessionId"):
        p.check_session_id("s" * 257)
    with pytest.raises(ParamValidationError, match="SessionId"):
        p.check_session_id("a_b")


def test_s3_uri_and_input_location() -> None:
    assert p.check_s3_uri("s3://bucket/key.json") == "s3://bucket/key.json"
    assert p.check_input_location("s3://b/k") == "s3://b/k"
    for bad in ["", "http://b/k", "s3://", "bucket/key", "s3://" + "b" * 1020]:
        with pytest.raises(ParamValidationError):
            p.check_s3_uri(bad)
    with pytest.raises(ParamValidationError, match="required"):
        p.check_input_location(None)
    with pytest.raises(ParamValidationError, match="InputLocation"):
        p.check_input_location("ftp://b/k")


def test_s3_output_path_extension() -> None:
    assert p.check_s3_output_path_extension("run/1") == "run/1"
    for bad in ["", "s3://x", "https://x", "a b", "x" * 513]:
        with pytest.raises(ParamValidationError, match="S3OutputPathExtension"):
            p.check_s3_output_path_extension(bad)


def test_content_type() -> None:
    assert p.check_content_type("application/json") == "application/json"
    with pytest.raises(ParamValidationError, match="US-ASCII"):
        p.check_content_type("text/\u00e9")
    with pytest.raises(ParamValidationError, match="CR, LF"):
        p.check_content_type("text/plain\r\nX-Evil: 1")
    with pytest.raises(ParamValidationError, match="Accept"):
        p.check_content_type("x" * 1025, "Accept")


def test_body_limits() -> None:
    assert p.check_body("h\u00e9") == "h\u00e9".encode()
    assert p.check_body(bytearray(b"ab")) == b"ab"
    assert p.check_body(b"x" * p.MAX_BODY_BYTES) == b"x" * p.MAX_BODY_BYTES
    with pytest.raises(ParamValidationError, match="6291456"):
        p.check_body(b"x" * (p.MAX_BODY_BYTES + 1))
    small = io.BytesIO(b"abc")
    assert p.check_body(small) is small
    big = io.BytesIO(b"x" * (p.MAX_BODY_BYTES + 1))
    with pytest.raises(ParamValidationError, match="Body is"):
        p.check_body(big)
    with pytest.raises(ParamValidationError, match="required"):
        p.check_body(None)
    with pytest.raises(ParamValidationError, match="must be bytes"):
        p.check_body(12)


def test_stream_params_builder() -> None:
    params = p.stream_params(
        "ep",
        "hi",
        content_type="application/json",
        accept="text/event-stream",
        custom_attributes="k=v",
        target_variant="v1",
        target_container_hostname="c1",
        inference_id="id-1",
        inference_component_name="ic",
        session_id="sess-1",
    )
    assert params == {
        "EndpointName": "ep",
        "Body": b"hi",
        "ContentType": "application/json",
        "Accept": "text/event-stream",
        "CustomAttributes": "k=v",
        "TargetVariant": "v1",
        "TargetContainerHostname": "c1",
        "InferenceId": "id-1",
        "InferenceComponentName": "ic",
        "SessionId": "sess-1",
    }
    assert p.stream_params("ep", b"") == {"EndpointName": "ep", "Body": b""}
    with pytest.raises(ParamValidationError):
        p.stream_params("ep", b"", session_id="NEW_SESSION")


def test_invoke_params_builder() -> None:
    params = p.invoke_params(
        "ep", b"x", target_model="m.tar.gz", enable_explanations="`true`", session_id="NEW_SESSION"
    )
    assert params == {
        "EndpointName": "ep",
        "Body": b"x",
        "TargetModel": "m.tar.gz",
        "EnableExplanations": "`true`",
        "SessionId": "NEW_SESSION",
    }


def test_async_params_builder() -> None:
    params = p.async_params(
        "ep",
        "s3://b/in.json",
        content_type="application/json",
        accept="application/json",
        custom_attributes="a",
        inference_id="i",
        request_ttl_seconds=60,
        invocation_timeout_seconds=10,
        s3_output_path_extension="x/y",
        filename="out.json",
    )
    assert params["RequestTTLSeconds"] == 60
    assert params["InvocationTimeoutSeconds"] == 10
    assert params["Filename"] == "out.json"
    assert params["S3OutputPathExtension"] == "x/y"
    with pytest.raises(ParamValidationError, match="RequestTTLSeconds"):
        p.async_params("ep", "s3://b/k", request_ttl_seconds=30)


def test_builders_match_botocore_model() -> None:
    """Every key the builders emit is a member of the operation's input shape."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    for op, params in [
        ("InvokeEndpointWithResponseStream", p.stream_params("e", b"", accept="a", session_id="s")),
        ("InvokeEndpoint", p.invoke_params("e", b"", target_model="m", enable_explanations="x")),
        ("InvokeEndpointAsync", p.async_params("e", "s3://b/k", filename="f", request_ttl_seconds=60)),
    ]:
        members = model.operation_model(op).input_shape.members
        assert set(params) <= set(members), op


def test_the_checks_of_earlier_releases_are_their_members_rules() -> None:
    names = {
        "check_target_variant": "TargetVariant",
        "check_target_container_hostname": "TargetContainerHostname",
        "check_inference_component_name": "InferenceComponentName",
        "check_inference_id": "InferenceId",
        "check_target_model": "TargetModel",
        "check_enable_explanations": "EnableExplanations",
        "check_custom_attributes": "CustomAttributes",
        "check_invocation_timeout": "InvocationTimeoutSeconds",
        "check_ttl": "RequestTTLSeconds",
        "check_filename": "Filename",
        "check_s3_output_path_extension": "S3OutputPathExtension",
        "check_input_location": "InputLocation",
        "check_body": "Body",
    }
    for name, member in names.items():
        check = getattr(p, name)
        assert member in (check.__doc__ or ""), name
        with pytest.raises(ParamValidationError, match=member):
            check(None)
    with pytest.raises(AttributeError):
        p.check_no_such_member  # noqa: B018
