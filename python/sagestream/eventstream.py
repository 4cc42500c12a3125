"""The generic AWS event stream codec (``application/vnd.amazon.eventstream``), in Rust.

>>> from sagestream.eventstream import encode, decode
>>> [m.payload for m in decode(encode({":event-type": "PayloadPart"}, b"hi"))]
[b'hi']
"""

from __future__ import annotations

from sagestream._core import Decoder, Message, PayloadDecoder, decode, encode

__all__ = ["Decoder", "Message", "PayloadDecoder", "decode", "encode"]
