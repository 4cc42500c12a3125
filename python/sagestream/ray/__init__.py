"""Batch inference over SageMaker endpoints on Ray Data (``pip install 'sagestream[ray]'``).

::

    import ray, sagestream.ray

    ds = ray.data.read_json("s3://my-bucket/prompts.jsonl")           # a "prompt" column
    ds = ds.map_batches(sagestream.ray.SageMakerStream, batch_size=64, num_cpus=0.25,
                        fn_constructor_kwargs=dict(endpoint_name="my-llm", region_name="us-east-1",
                                                   max_concurrent_streams=32),
                        compute=ray.data.ActorPoolStrategy(size=4))
    ds.write_parquet("s3://my-bucket/answers/")

Each actor sends its rows with one :class:`sagestream.AsyncClient` through
:func:`sagestream.batch.invoke_many`; the limits and counters of an endpoint live in one named
actor every pipeline calling it shares (:func:`endpoint_counters`).
"""

from __future__ import annotations

try:
    import ray as _ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sagestream.ray needs Ray Data: pip install 'sagestream[ray]'") from exc

from sagestream.ray._coordinator import (
    NAMESPACE,
    EndpointCounters,
    close_endpoint,
    endpoint_counters,
    endpoint_workers,
)
from sagestream.ray._udf import RESULT_COLUMNS, SageMakerStream

__all__ = [
    "NAMESPACE",
    "RESULT_COLUMNS",
    "EndpointCounters",
    "SageMakerStream",
    "close_endpoint",
    "endpoint_counters",
    "endpoint_workers",
]
