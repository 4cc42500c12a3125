"""What a framework integration tells an instrumentation of the calls it makes.

An integration (LangChain, Strands, your own) wraps each model call in :func:`annotate`, naming
its GenAI operation (``chat``, ``text_completion``), and reports the token usage it parses
from the answer; an instrumentation such as ``sagestream.otel`` puts both on the call's span and
metrics. While nothing is instrumented, :func:`annotate` yields None and costs one test::

    from sagestream.observe import annotate

    with annotate("chat") as note, client.invoke_stream(endpoint, body) as stream:
        for part in stream:
            ...
        if note is not None:
            note.usage(input_tokens, output_tokens)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from sagestream import _observe

__all__ = ["Annotation", "annotate", "annotation"]


class Annotation:
    """What a framework integration says of the calls it makes inside :func:`annotate`."""

    __slots__ = ("input_tokens", "open", "operation_name", "output_tokens", "watches")

    def __init__(self, operation_name: str | None) -> None:
        #: True until :func:`annotate` exits: a watch may keep its span open until then, so that
        #: the usage reported after the stream's last part still lands on it.
        self.open = True
        #: The GenAI operation (``chat``, ``text_completion``); None: the watcher's default.
        self.operation_name = operation_name
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        #: The watches of the calls made so far (the watcher appends; usage goes to the last).
        self.watches: list[Any] = []

    def usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        """The token usage the container reported for the call in progress."""
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        if self.watches:
            report = getattr(self.watches[-1], "usage", None)
            if report is not None:
                report(input_tokens, output_tokens)

    def close(self) -> None:
        """The annotated block is over: the watches may end what they held open."""
        self.open = False
        for watch in self.watches:
            release = getattr(watch, "release", None)
            if release is not None:
                release()


#: The annotation of the calls being made (set by :func:`annotate`).
annotation: ContextVar[Annotation | None] = ContextVar("sagestream_annotation", default=None)


@contextlib.contextmanager
def annotate(operation_name: str | None) -> Iterator[Annotation | None]:
    """Say what the calls made inside are; yields None (and costs nothing) when nothing watches."""
    if _observe.watcher is None:
        yield None
        return
    note = Annotation(operation_name)
    token = annotation.set(note)
    try:
        yield note
    finally:
        note.close()
        # A generator finished in another context (closed by the collector) cannot reset it.
        with contextlib.suppress(ValueError):
            annotation.reset(token)
