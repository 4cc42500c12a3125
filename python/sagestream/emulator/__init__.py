"""A local SageMaker Runtime endpoint: ``sagestream serve``, and ``Emulator`` for tests.

Stock boto3, the AWS CLI and sagestream talk to it as to the service: SigV4-verified
InvokeEndpoint, InvokeEndpointWithResponseStream (event stream responses) and
InvokeEndpointAsync (through S3), with demo, echo and proxy models and fault injection.
"""

from __future__ import annotations

from sagestream.extras import SERVE_INSTALL

try:
    import aiohttp  # noqa: F401
    import h2  # noqa: F401
except ImportError as exc:
    raise ImportError(f"sagestream.emulator needs the serve extra ({exc}): {SERVE_INSTALL}") from exc

from .config import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ASYNC_FAILURE_PATH,
    DEFAULT_ASYNC_INPUT_PATH,
    DEFAULT_ASYNC_OUTPUT_PATH,
    DEFAULT_REGION,
    DEFAULT_SECRET_ACCESS_KEY,
    EmulatorConfig,
)
from .demo import demo_tokens
from .harness import Emulator
from .models import bulk_part
from .requestlog import RequestLog, RequestRecord
from .server import EmulatorServer

__all__ = [
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_ASYNC_FAILURE_PATH",
    "DEFAULT_ASYNC_INPUT_PATH",
    "DEFAULT_ASYNC_OUTPUT_PATH",
    "DEFAULT_REGION",
    "DEFAULT_SECRET_ACCESS_KEY",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "RequestLog",
    "RequestRecord",
    "bulk_part",
    "demo_tokens",
]
