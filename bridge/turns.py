"""The event loop's turns while messages flow: coalesced, as a network card coalesces interrupts.

At a steady rate from many connections each message arrives alone, and the daemon pays a whole
loop turn for it: a wake-up from ``epoll``, a read, and a socket write to the broker. Most of that
cost is the turn's, not the message's. While messages come closer together than ``hold``, a turn
that routed some ends (once the sinks have written them) by holding the loop until ``hold`` has
passed since the turn's first message: what arrives meanwhile waits in the kernel's socket
buffers, and the next turn reads all of it and writes it as one. A message then waits at most
``hold`` more; the loop does nothing while it holds, and spends no CPU.

When a turn is held is decided from when its first message was routed:
- a message after a quiet spell (none routed for longer than ``hold``) is not held back, nor is
  the turn that routed it: one message now and then is written as soon as it comes;
- a turn that took half of ``hold`` or longer is not held either: the loop is busy (a burst, or
  a flow it has less than half its time to spare for), and holding it would cost throughput;
- nor, for ``BUSY_FOR`` holds, is any turn after one that routed ``BUSY`` messages or more: a
  burst also has short turns between its large reads, and holding those cost up to 12 % of its
  throughput;
- nor is a turn that leaves something in a sink's queue (a full window, a broker down): what
  waits goes out as soon as there is room, not a hold later;
- ``hold`` 0 turns it off.

The kernel ends a sleep late (timer slack, scheduling: about 0.1 ms on a small VM); how late,
on average, is asked less the next time, so that a held turn ends ``hold`` after its first
message, not later.

The router calls ``routed`` for each message it routes. Sinks schedule their end-of-turn writes
with ``soon``, not the loop's ``call_soon``: ``end`` runs them all before it holds the turn, those
that reads later in the same turn scheduled (the broker's acks making room) too. ``sinks`` are
the daemon's, by name (the supervisor's own mapping, so a reload's changes are seen); each
one's ``queue`` is read, as the router reads it for ``block``. ``clock`` and ``sleep`` are
injected for tests."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sized
from typing import Protocol

Soon = Callable[[Callable[[], None]], None]  # schedules a call at the end of the loop turn
BUSY = 16  # messages routed in one turn that make it a busy one (a burst)
BUSY_FOR = 20  # holds after a busy turn during which no turn is held


class Queued(Protocol):
    """What ``Turns`` reads of a sink (``Sink`` has it): whether deliveries wait in its queue."""

    @property
    def queue(self) -> Sized: ...


class Turns:
    """One per daemon: ``routed`` after each message, ``soon`` for the sinks' end-of-turn
    writes; ``hold`` is the configured ``coalesce``."""

    __slots__ = ("_busy", "_clock", "_due", "_ended", "_first", "_late", "_routed", "_sinks",
                 "_sleep", "hold")

    def __init__(self, hold: float, sinks: Mapping[str, Queued], *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.hold = hold  # seconds; a reload may change it
        self._sinks, self._clock, self._sleep = sinks, clock, sleep
        self._due: list[Callable[[], None]] = []  # run by ``end``, in order
        self._first: float | None = None  # when this turn's first message was routed
        self._routed = 0  # messages routed in this turn
        self._busy = -math.inf  # until when no turn is held: a burst was seen (BUSY)
        self._ended = -math.inf  # when the last turn that routed messages ended
        self._late = 0.0  # how much later than asked a hold has been ending, on average

    def soon(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` at the end of this turn, before it is held."""
        if not self._due and self._first is None:
            asyncio.get_running_loop().call_soon(self.end)
        self._due.append(callback)

    def routed(self) -> None:
        """A message was routed in this turn."""
        if not self.hold:
            return
        self._routed += 1
        if self._first is None:
            if not self._due:
                asyncio.get_running_loop().call_soon(self.end)
            self._first = self._clock()

    def end(self) -> None:
        """The end of the turn: the calls it was given, then the hold if messages flow."""
        due, self._due = self._due, []
        first, self._first = self._first, None
        routed, self._routed = self._routed, 0
        loop = asyncio.get_running_loop()
        for callback in due:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - as the loop reports a callback's error
                loop.call_exception_handler({"message": "end-of-turn call failed",
                                             "exception": exc})
        if first is not None:
            self._hold(first, routed)

    def _hold(self, first: float, routed: int) -> None:
        """Hold the loop, if messages flow and nothing says not to (see above)."""
        now = self._clock()
        if routed >= BUSY:
            self._busy = now + BUSY_FOR * self.hold
        if first - self._ended <= self.hold and now >= self._busy and \
                (wait := first + self.hold - now) > self.hold / 2 and \
                not any(sink.queue for sink in self._sinks.values()):
            asked = max(0.0, wait - self._late)  # the kernel wakes a sleeper late: ask less
            self._sleep(asked)
            woke = self._clock()
            self._late = min(0.9 * self._late + 0.1 * (woke - now - asked), self.hold / 2)
            now = woke
        self._ended = now
