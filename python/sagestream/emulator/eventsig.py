"""Verification of signed event-stream request bodies: the chunk signature chain.

Each input event arrives wrapped in an outer message with headers ``:date`` (a timestamp) and
``:chunk-signature`` (32 bytes); its payload is the encoded inner message, empty for the
message that ends the input. The signature of message *n* is HMAC-SHA256, under the SigV4
signing key of its date, of::

    AWS4-HMAC-SHA256-PAYLOAD
    <:date as YYYYMMDD'T'HHMMSS'Z'>
    <YYYYMMDD>/<region>/<service>/aws4_request
    <hex signature of message n-1; of the request itself for the first>
    <hex SHA-256 of the encoded :date header>
    <hex SHA-256 of the payload>

(the AWS SigV4 documentation for event streams; what ``aws-sigv4``'s ``event_stream`` module
signs). :class:`ChainVerifier` checks one message after another.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import struct

from sagestream import eventstream

from .protocol import EmulatorError
from .sigv4 import MAX_SKEW, auth_error

__all__ = ["ChainVerifier", "SignedEvent"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class SignedEvent:
    """One verified outer message: its inner message bytes (empty for the end of input)."""

    __slots__ = ("end", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.end = not payload


class ChainVerifier:
    """Decodes a request body into outer messages and checks each one's signature, chained
    from ``seed`` (the request's own signature). Raises :class:`EmulatorError` (403,
    ``InvalidSignatureException``) on the first message that does not verify."""

    def __init__(self, seed: str, secret: str, region: str, service: str) -> None:
        self._last = seed
        self._secret = secret
        self._region = region
        self._service = service
        self._decoder = eventstream.Decoder()
        self._keys: dict[str, bytes] = {}
        self.ended = False
        self.count = 0
        #: Why the input was refused, once it was.
        self.failure: EmulatorError | None = None

    def feed(self, data: bytes, now: _dt.datetime | None = None) -> list[SignedEvent]:
        """The verified messages completed by ``data`` (frames may split anywhere). A message
        that does not verify ends the list, its error kept in :attr:`failure`."""
        out: list[SignedEvent] = []
        if self.failure is not None:
            return out
        try:
            for message in self._decoder.feed(data):
                if self.ended:
                    raise auth_error(
                        "InvalidSignatureException", "An event arrived after the signed end of the input."
                    )
                out.append(self._verify(message, now or _dt.datetime.now(_dt.timezone.utc)))
        except EmulatorError as exc:
            self.failure = exc
        return out

    def close(self) -> None:
        """The body ended: it must have ended with the signed empty message."""
        self._decoder.close()
        if not self.ended:
            raise auth_error(
                "InvalidSignatureException",
                "The input ended without the signed empty event that closes the signature chain.",
            )

    def _verify(self, message: eventstream.Message, now: _dt.datetime) -> SignedEvent:
        headers = message.headers
        date = headers.get(":date")
        signature = headers.get(":chunk-signature")
        if not isinstance(date, _dt.datetime) or not isinstance(signature, bytes):
            raise auth_error(
                "InvalidSignatureException",
                "Each event must carry a :date timestamp and a :chunk-signature.",
            )
        if abs(now - date) > MAX_SKEW:
            raise auth_error(
                "InvalidSignatureException",
                f"Signature expired: the event's :date {date:%Y%m%dT%H%M%SZ} is more than 5 minutes "
                f"from {now:%Y%m%dT%H%M%SZ}.",
            )
        millis = (date - _EPOCH) // _dt.timedelta(milliseconds=1)
        date_header = b"\x05:date\x08" + struct.pack(">q", millis)
        stamp = date.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                stamp,
                f"{day}/{self._region}/{self._service}/aws4_request",
                self._last,
                hashlib.sha256(date_header).hexdigest(),
                hashlib.sha256(message.payload).hexdigest(),
            ]
        )
        key = self._keys.get(day)
        if key is None:
            key = self._keys[day] = _signing_key(self._secret, day, self._region, self._service)
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.hex()):
            raise auth_error(
                "InvalidSignatureException",
                f"The signature of event {self.count + 1} of the input does not match: the chain of "
                "event signatures must continue from the request's signature.",
            )
        self._last = expected
        self.count += 1
        event = SignedEvent(message.payload)
        if event.end:
            self.ended = True
        return event
