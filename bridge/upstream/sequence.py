"""Gap detection in per-stream sequence numbers: each stream expects its last number plus one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final

from bridge.config.recovery_specs import SequenceSpec
from bridge.routing.template import Context, TemplateError
from bridge.upstream.dedup import hashable

# More streams than this (a `per` that names every message, say): forget them all, as on a
# resubscribe, so memory stays bounded; each stream's next number then starts it afresh.
MAX_STREAMS = 10_000
LOG_EVERY: Final = 60.0  # seconds between two log lines about one stream's gaps


class LogLimit:
    """At most one line per subject per ``every`` seconds; tells how many it held back."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self._at: dict[Hashable, float] = {}
        self._held: Counter[Hashable] = Counter()

    def due(self, subject: Hashable, now: float) -> int | None:
        """None: hold this one back; else log now, noting the number held back since."""
        at = self._at.get(subject)
        if at is not None and now - at < self.every:
            self._held[subject] += 1
            return None
        if at is None and len(self._at) >= MAX_STREAMS:
            self._at.clear()  # bounded: forgetting only lets one extra line through
            self._held.clear()
        self._at[subject] = now
        return self._held.pop(subject, 0)


@dataclass(frozen=True, slots=True)
class Gap:
    stream: Hashable  # the rendered ``per`` value; None with a single stream
    expected: int
    got: int

    def __str__(self) -> str:
        where = "" if self.stream is None else f" in stream {str(self.stream)[:64]!r}"
        missing = self.got - self.expected
        return f"sequence gap{where}: expected {self.expected}, got {self.got} ({missing} missing)"


def number(value: Any) -> int | None:
    """A sequence number from a rendered key: an integer, or a string or float holding one."""
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 40:
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    return None


class SequenceTracker:
    """The last number seen per stream; ``reset`` forgets them (every subscribe and connection)."""

    __slots__ = ("_last", "spec")

    def __init__(self, spec: SequenceSpec) -> None:
        self.spec = spec
        self._last: dict[Hashable, int] = {}

    def reset(self) -> None:
        self._last.clear()

    def read(self, ctx: Context) -> tuple[int, Hashable] | None:
        """The message's sequence number and stream, or None when it lacks either."""
        try:
            seq = number(self.spec.key.render(ctx))
            stream = None if self.spec.per is None else hashable(self.spec.per.render(ctx))
        except TemplateError:
            return None
        return None if seq is None else (seq, stream)

    def observe(self, seq: int, stream: Hashable) -> Gap | None:
        """The gap ``seq`` reveals in ``stream``, or None: in order, the first, a repeat, older."""
        last = self._last.get(stream)
        if last is not None and seq <= last:
            return None  # a duplicate or a late one: not a gap, and not a step back
        if last is None and len(self._last) >= MAX_STREAMS:
            self._last.clear()
        self._last[stream] = seq
        return None if last is None or seq == last + 1 else Gap(stream, last + 1, seq)
