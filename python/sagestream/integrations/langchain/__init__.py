"""LangChain on sagestream: a chat model and an LLM for SageMaker endpoints.

``pip install 'sagestream[langchain]'`` (needs only ``langchain-core``). The classes carry
langchain-aws's names and fields, so switching is the import line::

    from sagestream.integrations.langchain import ChatSagemakerEndpoint   # was: langchain_aws

    chat = ChatSagemakerEndpoint(endpoint_name="my-llm", region_name="us-east-1")
    for chunk in chat.stream("Tell me about rivers"):
        print(chunk.content, end="", flush=True)

- :class:`ChatSagemakerEndpoint` (``BaseChatModel``): ``invoke`` / ``stream`` on
  :class:`sagestream.Client`, ``ainvoke`` / ``astream`` on :class:`sagestream.AsyncClient`;
  ``bind_tools`` for endpoints that call tools (OpenAI ``tools`` format).
- :class:`SagemakerEndpoint` (``LLM``): text in, text out, the same clients.
- Content handlers with langchain-aws's interface (a langchain-aws handler works unchanged):
  :class:`ChatCompletionsContentHandler` (chat model, OpenAI-compatible chat: LMI / vLLM,
  TGI's Messages API; the default), :class:`ChatCompletionsLLMContentHandler` (LLM over the
  same endpoints) and :class:`TGIContentHandler` (LLM, TGI ``inputs`` / ``parameters``; the
  default); :class:`LLMContentHandler` and :class:`ChatModelContentHandler` to write others.

Stop sequences are sent to the container by the ready handlers and always applied to the text
(the answer ends before the first one, also across chunks). Errors are sagestream's typed
exceptions, raised after every chunk that arrived before them.
"""

from __future__ import annotations

from sagestream.integrations.langchain._chat import ChatSagemakerEndpoint
from sagestream.integrations.langchain._handlers import (
    ChatCompletionsContentHandler,
    ChatCompletionsLLMContentHandler,
    ChatModelContentHandler,
    ContentHandlerBase,
    LLMContentHandler,
    StreamingHandler,
    TGIContentHandler,
)
from sagestream.integrations.langchain._llm import SagemakerEndpoint

__all__ = [
    "ChatCompletionsContentHandler",
    "ChatCompletionsLLMContentHandler",
    "ChatModelContentHandler",
    "ChatSagemakerEndpoint",
    "ContentHandlerBase",
    "LLMContentHandler",
    "SagemakerEndpoint",
    "StreamingHandler",
    "TGIContentHandler",
]
