"""A local SageMaker Runtime endpoint: ``sagestream serve``, and ``Emulator`` for tests.

Stock boto3, the AWS CLI and sagestream talk to it as to the service: SigV4-verified
InvokeEndpoint, InvokeEndpointWithResponseStream (event stream responses) and
InvokeEndpointAsync (through S3), with demo, echo and proxy models and fault injection.
"""

from __future__ import annotations

from .models import bulk_part, demo_tokens
from .server import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ASYNC_FAILURE_PATH,
    DEFAULT_ASYNC_OUTPUT_PATH,
    DEFAULT_REGION,
    DEFAULT_SECRET_ACCESS_KEY,
    Emulator,
    EmulatorConfig,
    EmulatorServer,
)

__all__ = [
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_ASYNC_FAILURE_PATH",
    "DEFAULT_ASYNC_OUTPUT_PATH",
    "DEFAULT_REGION",
    "DEFAULT_SECRET_ACCESS_KEY",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "bulk_part",
    "demo_tokens",
]
