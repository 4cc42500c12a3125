"""Framework integrations on sagestream's clients, each an optional extra.

- :mod:`sagestream.integrations.langchain` (``pip install 'sagestream[langchain]'``): a LangChain
  chat model (``ChatSagemakerEndpoint``) and LLM (``SagemakerEndpoint``), named as langchain-aws
  names its own, with content handlers compatible with langchain-aws's.
- :mod:`sagestream.integrations.strands` (``pip install 'sagestream[strands]'``): a Strands
  Agents model provider (``SageMakerAIModel``), named as Strands names its own.

Each class takes ``endpoint_name=`` and either ``client=`` (a :class:`sagestream.Client` or
:class:`sagestream.AsyncClient`) or the clients' own keyword arguments (``region_name=``,
``endpoint_url=``, ``config=``, credentials, ...). Nothing here is imported by ``import
sagestream``; each module imports its framework.
"""

from __future__ import annotations

__all__: list[str] = []
