"""The rules table against botocore's own ``sagemaker-runtime`` service model.

Every input member of the three operations must be in the table with the model's lengths,
ranges, pattern and header name. Patterns are compared by meaning: the model's Java pattern is
translated to Python and both are asked about sample values that must match and must not.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import botocore
import botocore.loaders
import botocore.model
import botocore.session
import pytest
from sagestream import _rules, service

MODEL = botocore.session.get_session().get_service_model("sagemaker-runtime")


def _java_to_python(pattern: str) -> re.Pattern[str]:
    """The model's Java pattern as Python (sagestream's translation, asked about samples)."""
    translated = _rules.python_pattern(pattern)
    assert translated is not None, pattern
    return translated


# Values that must be accepted and refused, per member; "stricter" values are refused by the
# service although the model's pattern alone would take them.
SAMPLES: dict[str, dict[str, list[str]]] = {
    "EndpointName": {
        "ok": ["a", "my-endpoint", "A1--b2", "0"],
        "bad": ["", "-a", "a-", "a_b", "chat\n", "é"],
    },
    "ContentType": {"ok": ["application/json", "", "a\tb"], "bad": ["text/é", "\u2028"]},
    "Accept": {"ok": ["text/event-stream", ""], "bad": ["é"]},
    "CustomAttributes": {
        "ok": ["a=1; b=two", "", "tab\there"],
        "bad": ["café"],
        "stricter": ["bell\x07", "a\nb"],
    },
    "TargetModel": {"ok": ["m.tar.gz", "a b"], "bad": ["", " lead", "tab\there"], "stricter": ["émodel"]},
    "TargetVariant": {"ok": ["AllTraffic", "v-1"], "bad": ["", "bad_name", "v\n"]},
    "TargetContainerHostname": {"ok": ["c-1"], "bad": ["bad_host", "-c"]},
    "InferenceId": {
        "ok": ["abc 123!", "x"],
        "bad": ["", " lead", "tab\there", "id\n"],
        "stricter": ["\u00e9abc", "\u4e2dx"],
    },
    "PrefixAwareId": {
        "ok": ["app-1 prefix", "x"],
        "bad": ["", " lead", "tab\there", "id\n"],
        "stricter": ["\u00e9abc"],
    },
    "EnableExplanations": {"ok": ["`true`", "a b c"], "bad": ["a\nb", "x\ry"]},
    "InferenceComponentName": {"ok": ["ic", "ic-1", "a"], "bad": ["bad_", "-ic", "ic-", "ic\n"]},
    "SessionId": {"ok": ["abc-123", "s"], "bad": ["a_b", "", "s\n"]},
    "InputLocation": {
        "ok": ["s3://bucket/key", "https://host/b/k", "s3://b"],
        "bad": ["ftp://b/k", "s3:///k", "bucket/key", "s3://b/k\n"],
    },
    "S3OutputPathExtension": {
        "ok": ["run/1", "team/run-7", "a(b)*!'"],
        "bad": ["s3://x", "https://x", "a b"],
    },
    "Filename": {"ok": ["out.json", "a", "A-b_c.txt"], "bad": [".hidden", "a.b.c", "-a", "a/b", "a b"]},
}


def _members() -> list[tuple[str, str, Any]]:
    out = []
    for op_name in ("InvokeEndpoint", "InvokeEndpointWithResponseStream", "InvokeEndpointAsync"):
        shape = MODEL.operation_model(op_name).input_shape
        for member, member_shape in shape.members.items():
            if member not in service.OPERATIONS[op_name].known:
                out.append((op_name, member, member_shape))
    return out


def unmapped(model: Any) -> dict[str, set[str]]:
    """The input members of ``model`` the table neither maps nor lists as known, by operation."""
    found = {}
    for name, op in service.OPERATIONS.items():
        left = set(model.operation_model(name).input_shape.members) - set(op.members) - op.known
        if left:
            found[name] = left
    return found


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


INSTALLED = _version(botocore.__version__)


def _in_installed_model(op_name: str, member: str) -> bool:
    since = service.BOTOCORE_SINCE.get((op_name, member))
    return since is None or _version(since) <= INSTALLED


def test_the_table_has_the_three_operations_and_their_routes() -> None:
    assert set(service.OPERATIONS) == set(MODEL.operation_names)
    for name, op in service.OPERATIONS.items():
        http = MODEL.operation_model(name).http
        assert op.method == http["method"]
        assert op.path == http["requestUri"]
        assert op.status == http.get("responseCode", 200)
        # Every member of the installed model is in the table; the table has the members of
        # newer models too, each with the first botocore that has it.
        in_model = set(MODEL.operation_model(name).input_shape.members)
        assert in_model - op.known == {m for m in op.members if _in_installed_model(name, m)}, name
    assert MODEL.signing_name == _rules.SIGNING_NAME


def test_every_member_of_the_model_is_a_row_or_known() -> None:
    assert unmapped(MODEL) == {}


def test_a_member_the_table_does_not_know_is_found() -> None:
    """What the day botocore's model gains a member looks like: the check above fails."""
    document = copy.deepcopy(
        botocore.loaders.create_loader().load_service_model("sagemaker-runtime", "service-2")
    )
    shape = document["operations"]["InvokeEndpoint"]["input"]["shape"]
    document["shapes"]["NewHeaderValue"] = {"type": "string", "max": 64}
    document["shapes"][shape]["members"]["SomeNewHeader"] = {
        "shape": "NewHeaderValue",
        "location": "header",
        "locationName": "X-Amzn-SageMaker-Some-New-Header",
    }
    newer = botocore.model.ServiceModel(document, "sagemaker-runtime")
    assert unmapped(newer) == {"InvokeEndpoint": {"SomeNewHeader"}}


def test_the_table_has_the_answers_headers() -> None:
    for name, op in service.OPERATIONS.items():
        shape = MODEL.operation_model(name).output_shape
        in_model = {
            member: m.serialization["name"]
            for member, m in shape.members.items()
            if m.serialization.get("location") == "header"
        }
        expected = {k: v for k, v in op.outputs.items() if _in_installed_model(name, k)}
        assert in_model == expected, name


def test_every_newer_member_is_in_the_table() -> None:
    for (op_name, member), since in service.BOTOCORE_SINCE.items():
        op = service.OPERATIONS[op_name]
        assert member in op.members or member in op.outputs, (op_name, member)
        assert _version(since) > (1, 35, 0)  # the declared floor has none of them


def _model_is_older_than_inline_async_bodies() -> bool:
    return "Body" not in MODEL.operation_model("InvokeEndpointAsync").input_shape.members


@pytest.mark.parametrize(("op_name", "member", "shape"), _members(), ids=lambda v: str(v)[:40])
def test_member_matches_the_service_model(op_name: str, member: str, shape: Any) -> None:
    op = service.OPERATIONS[op_name]
    entry = op.members[member]
    rule = entry.rule
    required = member in MODEL.operation_model(op_name).input_shape.required_members
    if (op_name, member) == (
        "InvokeEndpointAsync",
        "InputLocation",
    ) and _model_is_older_than_inline_async_bodies():
        required = False  # the service's rule since inline bodies: InputLocation or Body
    assert entry.required == required
    location = shape.serialization.get("location", "body")
    assert entry.location == location
    if location == "header":
        assert op.header(member) == shape.serialization["name"]
    assert rule.type == shape.type_name
    assert rule.min == shape.metadata.get("min")
    assert rule.max == shape.metadata.get("max")
    assert rule.pattern == shape.metadata.get("pattern")
    assert rule.sensitive == bool(shape.metadata.get("sensitive"))
    if rule.pattern is None:
        return
    model = _java_to_python(rule.pattern)
    samples = SAMPLES[member]
    if member == "SessionId" and op_name == "InvokeEndpoint":
        samples = {**samples, "ok": [*samples["ok"], "NEW_SESSION"]}
    if member == "SessionId" and op_name == "InvokeEndpointWithResponseStream":
        samples = {**samples, "bad": [*samples["bad"], "NEW_SESSION"]}
    for value in samples["ok"]:
        if rule.min is not None and len(value) < rule.min:
            continue
        assert model.fullmatch(value), (member, value)
        assert rule.violation(value) is None, (member, value)
    for value in samples["bad"]:
        violation = rule.violation(value)
        assert violation is not None, (member, value)
        if violation.kind == "pattern":
            assert not violation.strict_only, (member, value)
            assert model.fullmatch(value) is None, (member, value)
    for value in samples.get("stricter", []):
        assert model.fullmatch(value), (member, value)
        violation = rule.violation(value)
        assert violation is not None, (member, value)
        assert violation.strict_only
        assert rule.stricter is not None
    if not samples.get("stricter"):
        assert rule.stricter is None, member


@pytest.mark.parametrize(("op_name", "member", "shape"), _members(), ids=lambda v: str(v)[:40])
def test_lengths_and_ranges_are_inclusive(op_name: str, member: str, shape: Any) -> None:
    rule = service.OPERATIONS[op_name].members[member].rule
    if rule.type == "integer":
        assert rule.min is not None
        assert rule.max is not None
        assert rule.violation(rule.min) is None
        assert rule.violation(rule.max) is None
        assert rule.violation(rule.min - 1).kind == "min_value"  # type: ignore[union-attr]
        assert rule.violation(rule.max + 1).kind == "max_value"  # type: ignore[union-attr]
        assert rule.violation(True).kind == "type"  # type: ignore[union-attr]
        return
    assert rule.max is not None
    fill = b"x" if rule.type == "blob" else SAMPLES.get(member, {"ok": ["x"]})["ok"][0][:1] or "x"
    if rule.type == "blob":
        assert rule.violation(b"x" * rule.max) is None
        assert rule.violation(b"x" * (rule.max + 1)).kind == "max_length"  # type: ignore[union-attr]
        return
    too_long = str(fill) * (rule.max + 1)
    violation = rule.violation(too_long)
    assert violation is not None
    assert violation.kind == "max_length"


def test_defaults_and_constants() -> None:
    assert MODEL.shape_for("BodyBlob").metadata["max"] == _rules.MAX_BODY_BYTES
    if not _model_is_older_than_inline_async_bodies():
        assert MODEL.shape_for("AsyncBodyBlob").metadata["max"] == _rules.MAX_ASYNC_BODY_BYTES
    assert _rules.DEFAULT_REQUEST_TTL_SECONDS == 21_600
    assert _rules.DEFAULT_INVOCATION_TIMEOUT_SECONDS == 900
    assert _rules.INFERENCE_ID.wire_name == "inferenceId"
    assert _rules.REQUEST_TTL_SECONDS.wire_name == "requestTTLSeconds"


def test_a_rule_remembers_the_strings_it_took_and_only_those() -> None:
    rule = service.INVOKE_STREAM.members["CustomAttributes"].rule
    rule._taken.clear()
    assert rule.check("tokens=1") == "tokens=1"
    assert "tokens=1" in rule._taken
    for _ in range(2):  # a refused value is refused every time, never remembered
        with pytest.raises(_rules.ParamValidationError, match="CustomAttributes"):
            rule.check("x" * 1025)
        with pytest.raises(_rules.ParamValidationError, match="not visible US-ASCII"):
            rule.check("a\r\nb")
    assert set(rule._taken) == {"tokens=1"}
    for i in range(_rules._TAKEN_MAX + 10):  # bounded
        rule.check(f"attr={i}")
    assert len(rule._taken) <= _rules._TAKEN_MAX
    body = service.INVOKE_STREAM.members["Body"].rule
    assert body.check("text") == b"text"  # a str payload is encoded every time
    assert body.check("text") == b"text"
    assert not body._taken
