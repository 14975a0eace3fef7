"""``connect_every``: when a pool's next connection may open.

Openings are spaced ``every`` seconds apart, for the first start and for a reconnect storm
alike. An HTTP 429 or 418 answer to the upgrade (the upstream's connection-rate limit) doubles
the spacing, up to ``MAX_FACTOR`` times ``every`` (at least ``FLOOR`` seconds once refused, so
that a pool with no spacing still backs off); every connection that opens halves it again,
down to ``every``."""

from __future__ import annotations

from typing import Final, Protocol

MAX_FACTOR: Final = 64
FLOOR: Final = 0.25
RATE_LIMITED: Final = frozenset({418, 429})


class Spacing:
    """Slots for openings: ``claim(now)`` says when the caller may open; times are monotonic."""

    __slots__ = ("_every", "_next", "gap")

    def __init__(self, every: float) -> None:
        self._every = self.gap = every
        self._next = float("-inf")

    def claim(self, now: float) -> float:
        """The time at which this opening may go ahead (``now`` or later); the next one's
        slot is ``gap`` after it."""
        at = max(now, self._next)
        self._next = at + self.gap
        return at

    def refused(self, status: int | None, now: float) -> None:
        """An opening ended: ``status`` is the HTTP status of a rejected upgrade (None for
        any other failure). A rate-limit answer lengthens the spacing from now on."""
        if status in RATE_LIMITED:
            self.gap = min(max(self.gap * 2, FLOOR), max(self._every, FLOOR) * MAX_FACTOR)
            self._next = max(self._next, now + self.gap)

    def opened(self) -> None:
        """A connection opened: the upstream let it in, so the spacing eases back."""
        half = self.gap / 2
        self.gap = self._every if half < max(self._every, FLOOR) else half


class Gate(Protocol):
    """What each connection of a pool passes before opening (``connect_every``)."""

    async def admit(self) -> None:
        """Return when this opening may go ahead."""

    def opened(self, status: int | None, ok: bool) -> None:
        """How the opening went: ``ok``, or failed (``status``: a rejected upgrade's)."""
