"""Stop sequences applied to streamed text: the answer ends before the first one.

Containers differ (OpenAI-compatible servers end before the stop sequence, TGI includes it,
a user's own content handler may not send stops at all), and frameworks promise the answer is
cut before it. A stop sequence can span pieces, so the tail that could still begin one is held
back until the next piece tells; only that tail, so pieces otherwise pass through unchanged.
"""

from __future__ import annotations

__all__ = ["StopCutter", "cut_at_stop"]


def cut_at_stop(text: str, stops: list[str] | None) -> str:
    """``text`` up to the first occurrence of any of ``stops``."""
    if not stops:
        return text
    hits = [i for stop in stops if stop and (i := text.find(stop)) != -1]
    return text[: min(hits)] if hits else text


class StopCutter:
    """Feed it the pieces of a streamed answer; it gives back what may be emitted."""

    __slots__ = ("_held", "_stops", "stopped")

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        #: True once a stop sequence was found: the answer is over.
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that may be emitted now (``stopped`` says whether the answer ended)."""
        if self.stopped:
            return ""
        text = self._held + piece
        hits = [i for stop in self._stops if (i := text.find(stop)) != -1]
        if hits:
            self.stopped = True
            self._held = ""
            return text[: min(hits)]
        keep = 0
        for stop in self._stops:
            # The longest end of ``text`` that begins ``stop``.
            for size in range(min(len(stop) - 1, len(text)), keep, -1):
                if text.endswith(stop[:size]):
                    keep = size
                    break
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """At the end of the answer: what was held back (no stop sequence followed)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held
