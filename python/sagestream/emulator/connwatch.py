"""A guard against one aiohttp behaviour: a connection that ends without telling its body.

On bad HTTP chunk framing once a body has begun, aiohttp 3.14's compiled parser closes the
connection and records the error on the connection only: the body reader, and whoever awaits
it, would wait forever (the read timeout is cancelled too). Upstream, malformed chunked bodies
leaving a reader hanging are aio-libs/aiohttp#10355 (client) and #10596 (server, fixed by
#12119); the case guarded here, the parser's error not reaching the body, was seen with 3.14. The
emulator's proxy model watches each container connection it reads a body from; the clients
read with the Rust transport and need no watch.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any

import aiohttp

__all__ = ["watch_connection"]


#: The body being read on each open connection, for :func:`_body_cut_off` (one entry per
#: connection, dropped with it).
_BODIES: weakref.WeakKeyDictionary[Any, aiohttp.StreamReader] = weakref.WeakKeyDictionary()


def watch_connection(response: Any) -> None:
    """Have the end of ``response``'s connection reach its body (see :func:`_body_cut_off`)."""
    protocol = getattr(getattr(response, "connection", None), "protocol", None)
    closed = getattr(protocol, "closed", None)
    if not isinstance(closed, asyncio.Future):
        return
    if protocol not in _BODIES:  # one watch per connection, however many streams it carries
        closed.add_done_callback(functools.partial(_body_cut_off, weakref.ref(protocol)))
    _BODIES[protocol] = response.content


def _body_cut_off(protocol: weakref.ref[Any], closed: asyncio.Future[None]) -> None:
    """The connection closed: make sure its unfinished body says so.

    On bad HTTP chunk framing once a body has begun, aiohttp's compiled parser (3.14) closes the
    connection and records the error on the connection only: the body reader, and whoever
    awaits it, would wait forever, the read timeout being cancelled too.
    """
    cause = None if closed.cancelled() else closed.exception()  # also marks it retrieved
    owner = protocol()
    content = _BODIES.pop(owner, None) if owner is not None else None
    if content is None or content.is_eof() or content.exception() is not None:
        return
    error = aiohttp.ClientPayloadError("the connection closed before the end of the response body")
    if cause is not None:
        error.__cause__ = cause
    content.set_exception(error)
