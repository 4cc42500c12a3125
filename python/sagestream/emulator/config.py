"""What an emulator serves and how: ``EmulatorConfig`` and the documented defaults."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from sagestream import service

# Re-exported: the default of ``request_log_size`` below, defined beside the log.
from .requestlog import DEFAULT_REQUEST_LOG_SIZE as DEFAULT_REQUEST_LOG_SIZE

#: The logger of every part of the emulator (``sagestream serve`` shows its INFO lines: one a
#: request).
log = logging.getLogger("sagestream.emulator")

#: Documented default credentials (any SDK configured with these can call the emulator).
DEFAULT_ACCESS_KEY_ID = "sagestream"
DEFAULT_SECRET_ACCESS_KEY = "sagestream-secret"
DEFAULT_REGION = "us-east-1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: The bucket the emulator creates in its embedded S3, and where async inputs, results and
#: failures go unless configured.
DEFAULT_ASYNC_BUCKET = "sagestream-async"
#: A bucket the embedded S3 also creates, empty, for the documentation's examples.
DEFAULT_EXAMPLES_BUCKET = "sagestream-examples"
#: `sagestream serve`'s embedded S3 port (fixed, so the environment printed for it holds
#: from one start to the next).
DEFAULT_S3_PORT = 8082
DEFAULT_ASYNC_INPUT_PATH = f"s3://{DEFAULT_ASYNC_BUCKET}/input"
DEFAULT_ASYNC_OUTPUT_PATH = f"s3://{DEFAULT_ASYNC_BUCKET}/output"
DEFAULT_ASYNC_FAILURE_PATH = f"s3://{DEFAULT_ASYNC_BUCKET}/failure"
#: How long a stateful session lives after it is created.
DEFAULT_SESSION_TTL = 20 * 60.0
#: A connection with no request in progress (none sent yet, headers still arriving, or idle
#: between requests) is closed after this many seconds.
DEFAULT_IDLE_TIMEOUT = 60.0
#: A request body must arrive whole within this many seconds of its headers.
DEFAULT_BODY_TIMEOUT = 60.0
#: `sagestream serve`'s ports of InvokeEndpointWithBidirectionalStream (HTTP/2): cleartext with
#: prior knowledge, and TLS with a generated certificate (the service's own port is 8443).
DEFAULT_DUPLEX_PORT = 8081
DEFAULT_DUPLEX_TLS_PORT = 8443

_Model = TypeVar("_Model")


@dataclass
class EmulatorConfig:
    """Everything the server needs to know.

    ``endpoints`` maps endpoint names to models: ``"demo"`` (optionally ``"demo:FORMAT"``, the
    demo's default output format), ``"echo"`` or a container URL ``"http://host:port"``;
    ``"*"`` matches every other name; ``None`` serves every name with the demo model.
    ``max_connections`` caps open client connections, the HTTP/1.1 and HTTP/2 ports together
    (None: from the process's open-file limit); at the cap the connection idle the longest is
    closed to make room. ``idle_timeout`` closes a connection with no request in progress, on
    every port.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    access_key_id: str = DEFAULT_ACCESS_KEY_ID
    secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY
    endpoints: Mapping[str, str] | None = None
    s3_endpoint_url: str | None = None
    embedded_s3: bool = False
    #: The embedded S3's port on 127.0.0.1 (0: a free one; `sagestream serve` uses DEFAULT_S3_PORT).
    s3_port: int = 0
    #: Buckets the embedded S3 creates besides those of the async paths.
    s3_buckets: tuple[str, ...] = (DEFAULT_EXAMPLES_BUCKET,)
    token_delay: float = 0.0
    async_input_path: str = DEFAULT_ASYNC_INPUT_PATH
    async_output_path: str = DEFAULT_ASYNC_OUTPUT_PATH
    async_failure_path: str = DEFAULT_ASYNC_FAILURE_PATH
    async_max_concurrency: int = 4
    async_time_scale: float = 1.0
    session_ttl: float = DEFAULT_SESSION_TTL
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_connections: int | None = None
    #: The most records ``request_log`` keeps (a ring buffer: the oldest go first).
    request_log_size: int = DEFAULT_REQUEST_LOG_SIZE
    #: The bidirectional operation's cleartext HTTP/2 port (0: a free one; `sagestream serve`
    #: uses DEFAULT_DUPLEX_PORT).
    duplex_port: int = 0
    #: Also serve it over TLS (a certificate made at start-up), on ``duplex_tls_port``.
    duplex_tls: bool = False
    duplex_tls_port: int = 0

    def models(self, make: Callable[[str], _Model]) -> tuple[dict[str, _Model], _Model | None]:
        """The model ``make`` makes of each endpoint's spec, by name, and the one serving every
        other name (``"*"``'s, or the demo when no endpoint is configured; None: no other)."""
        if self.endpoints is None:
            return {}, make("demo")
        models: dict[str, _Model] = {}
        default = None
        for name, spec in self.endpoints.items():
            if name == "*":  # every other name
                default = make(spec)
                continue
            if service.ENDPOINT_NAME.violation(name) is not None:
                raise ValueError(f"invalid endpoint name {name!r}")
            models[name] = make(spec)
        return models, default


def connect_host(host: str) -> str:
    """The host a client on this machine uses to reach a server listening on ``host``, as it
    goes in a URL (a wildcard address is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def client_environment(
    config: EmulatorConfig, *, port: int, duplex_port: int, s3_url: str | None
) -> dict[str, str]:
    """The environment that points stock SDKs, the AWS CLI and sagestream at an emulator
    serving ``config`` on these ports: its credentials and region, and the service-specific
    endpoint variables botocore reads (not ``AWS_ENDPOINT_URL``, which would send S3 calls to
    the runtime port too). ``s3_url`` None: no S3 variable."""
    host = connect_host(config.host)
    env = {
        "AWS_ACCESS_KEY_ID": config.access_key_id,
        "AWS_SECRET_ACCESS_KEY": config.secret_access_key,
        "AWS_DEFAULT_REGION": config.region,
        "AWS_REGION": config.region,  # the variable other AWS SDKs read
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://{host}:{port}",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2": f"http://{host}:{duplex_port}",
    }
    if s3_url is not None:
        env["AWS_ENDPOINT_URL_S3"] = s3_url
    return env
