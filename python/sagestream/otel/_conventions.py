"""The names sagestream's telemetry uses, and which version of the GenAI conventions it speaks.

The names are written here as strings rather than imported from
``opentelemetry-semantic-conventions``: that package keeps the GenAI names among its incubating
ones, which move and are deprecated from one release to the next, and the ``otel`` extra stays on
``opentelemetry-api`` alone. ``tests/test_otel_conventions.py`` checks every name below against the
installed package's constants wherever the package has them.

Sources: the OpenTelemetry GenAI semantic conventions (client spans and metrics), the RPC / AWS SDK
conventions (``rpc.system = "aws-api"``, ``aws.request_id``), and the general registry
(``server.*``, ``error.type``, ``cloud.region``, ``http.response.status_code``).
"""

from __future__ import annotations

import os

__all__ = [
    "BUCKETS_SECONDS",
    "BUCKETS_TOKENS",
    "CONTENT_ENV",
    "PROVIDER",
    "STABILITY_ENV",
    "Mode",
    "mode_from_environment",
]

# --- GenAI (gen_ai.*) ---------------------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
#: v1.36.0 and earlier: the provider.
GEN_AI_SYSTEM = "gen_ai.system"
#: Since v1.37.0: the provider (replaces ``gen_ai.system``).
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"

GEN_AI_CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"
GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
GEN_AI_CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"

#: The provider's value. The conventions list no SageMaker value; like their ``aws.bedrock``.
PROVIDER = "aws.sagemaker"
#: Well-known ``gen_ai.operation.name`` values this package uses.
OPERATION_GENERATE_CONTENT = "generate_content"
OPERATION_CHAT = "chat"
OPERATION_TEXT_COMPLETION = "text_completion"

# --- RPC, AWS SDK, general ----------------------------------------------------------------------
RPC_SYSTEM = "rpc.system"
RPC_SERVICE = "rpc.service"
RPC_METHOD = "rpc.method"
RPC_SYSTEM_AWS_API = "aws-api"
#: botocore's ``service_id`` of sagemaker-runtime, as the AWS SDK instrumentations name it.
RPC_SERVICE_SAGEMAKER_RUNTIME = "SageMaker Runtime"
AWS_REQUEST_ID = "aws.request_id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
CLOUD_REGION = "cloud.region"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"

# --- SageMaker's own facts of a call (no convention names them yet) ----------------------------
SAGEMAKER_INFERENCE_COMPONENT = "aws.sagemaker.inference_component"
SAGEMAKER_TARGET_VARIANT = "aws.sagemaker.target_variant"
SAGEMAKER_TARGET_MODEL = "aws.sagemaker.target_model"
SAGEMAKER_INVOKED_VARIANT = "aws.sagemaker.invoked_production_variant"
SAGEMAKER_INFERENCE_ID = "aws.sagemaker.inference_id"
SAGEMAKER_SESSION_ID = "aws.sagemaker.session_id"
SAGEMAKER_ERROR_CODE = "aws.sagemaker.error_code"
SAGEMAKER_OUTPUT_LOCATION = "aws.sagemaker.output_location"
SAGEMAKER_FAILURE_LOCATION = "aws.sagemaker.failure_location"
#: Request and response bodies: only when content capture is on.
SAGEMAKER_REQUEST_BODY = "aws.sagemaker.request.body"
SAGEMAKER_RESPONSE_BODY = "aws.sagemaker.response.body"

# --- what the client measured -------------------------------------------------------------------
ATTEMPTS = "sagestream.attempts"
RETRIES = "sagestream.retries"
ATTEMPT = "sagestream.attempt"
RETRY_IN = "sagestream.retry_in"
PARTS = "sagestream.stream.parts"
BYTES = "sagestream.stream.bytes"
TIME_TO_FIRST_CHUNK = "sagestream.stream.time_to_first_chunk"
MAX_GAP = "sagestream.stream.max_gap"
CLOSED_EARLY = "sagestream.stream.closed_early"
POLLS = "sagestream.job.polls"

#: Span events.
EVENT_ATTEMPT_FAILED = "sagestream.attempt_failed"
EVENT_FIRST_CHUNK = "sagestream.first_chunk"
EVENT_SUBMITTED = "sagestream.job_submitted"

#: Metrics of the client beyond the GenAI ones.
CLIENT_ATTEMPTS = "sagestream.client.attempts"
CLIENT_RETRIES = "sagestream.client.retries"
CLIENT_ERRORS = "sagestream.client.errors"
CLIENT_JOB_DURATION = "sagestream.client.async_inference.duration"

#: The explicit bucket boundaries the GenAI conventions ask for: seconds, and tokens.
BUCKETS_SECONDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
BUCKETS_TOKENS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

# --- which version ------------------------------------------------------------------------------
STABILITY_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
#: The opt-in value of the GenAI conventions: emit the latest experimental names only.
LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: Values of ``CONTENT_ENV`` that put content on spans (the latest conventions' modes, and the
#: boolean of v1.36.0).
_CONTENT_ON = frozenset({"true", "span_only", "span_and_event"})


class Mode:
    """Which names to emit: v1.36.0's (the default) or the latest experimental ones."""

    __slots__ = ("latest", "provider_key")

    def __init__(self, latest: bool) -> None:
        self.latest = latest
        self.provider_key = GEN_AI_PROVIDER_NAME if latest else GEN_AI_SYSTEM

    def __repr__(self) -> str:
        return f"Mode(latest={self.latest})"


def mode_from_environment(environ: os._Environ[str] | dict[str, str] | None = None) -> Mode:
    """``OTEL_SEMCONV_STABILITY_OPT_IN``, as the GenAI conventions ask: a comma-separated list in
    which ``gen_ai_latest_experimental`` switches to the latest names (and drops v1.36.0's)."""
    env = os.environ if environ is None else environ
    values = {v.strip().lower() for v in env.get(STABILITY_ENV, "").split(",")}
    return Mode(LATEST_EXPERIMENTAL in values)


def content_from_environment(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for content on spans."""
    env = os.environ if environ is None else environ
    return env.get(CONTENT_ENV, "").strip().lower() in _CONTENT_ON
