"""One operation as a client sends it: the table's row beside botocore's model of it.

The operation table (:mod:`sagestream.service`) names every member, header and answer header
sagestream knows; botocore's installed model may know more (a service addition newer than this
sagestream, sent with ``extra=``). A :class:`Route` is both: the request path builds its
requests from the table and takes from the model only the header names of members the table
lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagestream.service import OPERATIONS, Operation

__all__ = ["Route"]


def _headers(shape: Any) -> dict[str, str]:
    """Member → header name of a model shape's header members."""
    return {
        name: member.serialization["name"]
        for name, member in shape.members.items()
        if member.serialization.get("location") == "header"
    }


@dataclass(frozen=True)
class Route:
    """How one operation maps to HTTP: the table's operation and botocore's model of it."""

    operation: Operation
    model: Any
    #: Header names of the input members only botocore's model has (``extra=``).
    headers: dict[str, str]
    #: Result key → response header name (lower case): the table's, then the model's others.
    outputs: dict[str, str]

    @classmethod
    def of(cls, operation_model: Any) -> Route:
        """The route of ``operation_model``'s operation."""
        table = OPERATIONS[operation_model.name]
        outputs = {k: v.lower() for k, v in _headers(operation_model.output_shape).items()}
        outputs.update((k, v.lower()) for k, v in table.outputs.items())
        headers = {k: v for k, v in _headers(operation_model.input_shape).items() if k not in table.members}
        return cls(table, operation_model, headers, outputs)

    @property
    def name(self) -> str:
        """The operation's name."""
        return self.operation.name

    @property
    def payload(self) -> str | None:
        """The member sent as the request body, if any."""
        return self.operation.payload

    def request(self, base_url: str, params: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """URL, headers and body of a call at ``base_url``, as botocore builds them."""
        return self.operation.request(base_url, params, self.headers)

    def output_headers(self, headers: dict[str, str]) -> dict[str, Any]:
        """The result keys carried by response headers (lower-case names)."""
        return {key: headers[name] for key, name in self.outputs.items() if name in headers}
