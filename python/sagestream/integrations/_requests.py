"""Request parameters named as boto3 names them, turned into sagestream's keyword arguments.

Frameworks and their users give SageMaker's optional request parameters by boto3's names
(langchain-aws's ``endpoint_kwargs``, Strands' ``additional_args``); the clients take
snake_case keywords. sagestream's own names are accepted too. The names are the operation
table's (:meth:`sagestream.service.Operation.split`); a member botocore's model has and the table
does not yet is sent through the clients' ``extra=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagestream.service import INVOKE, INVOKE_STREAM

__all__ = ["call_parameters"]


def call_parameters(given: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    """``invoke_stream`` (``stream``) or ``invoke`` keywords of boto3-named ``given`` (None values
    dropped). A boto3 name sagestream has no keyword for yet goes in ``extra=`` (the client checks
    it against botocore's model); TypeError names a parameter the operation does not have."""
    keywords, extra = (INVOKE_STREAM if stream else INVOKE).split(given)
    if extra:
        keywords["extra"] = extra
    return keywords
