"""Stateful sessions as the service keeps them: opened by ``NEW_SESSION``, checked on every
request that names one, closed on request or when they expire."""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid

from sagestream import service
from sagestream.emulator.protocol import validation_error

__all__ = ["Sessions", "is_close_request"]


def is_close_request(body: bytes) -> bool:
    """A stateful-session close request body: ``{"requestType": "CLOSE"}``."""
    if not body.startswith(b"{") or b"CLOSE" not in body:
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and str(doc.get("requestType", "")).upper() == "CLOSE"


class Sessions:
    """The open sessions: id → expiry (``time.time()``)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._expiry: dict[str, float] = {}

    def check(self, session_id: str | None) -> None:
        """An existing, unexpired session (NEW_SESSION passes where the rules allowed it)."""
        if session_id is None or session_id == service.NEW_SESSION:
            return
        expires = self._expiry.get(session_id)
        if expires is None or expires < time.time():
            self._expiry.pop(session_id, None)
            raise validation_error(f"Session id {session_id} does not exist or has expired.")

    def open(self) -> str:
        """A new session; the value of the ``NewSessionId`` header: ``<id>; Expires=<UTC time>``."""
        new_id = str(uuid.uuid4())
        expires = time.time() + self._ttl
        self._expiry[new_id] = expires
        stamp = _dt.datetime.fromtimestamp(expires, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{new_id}; Expires={stamp}"

    def close(self, session_id: str) -> None:
        self._expiry.pop(session_id, None)
