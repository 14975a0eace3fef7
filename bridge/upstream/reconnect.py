"""Reconnecting, kept apart from the connection: an async iterator of open connections.

Shaped like websockets' ``connect.__aiter__``: it opens a connection and yields it; the
caller pumps it and says how it ended (``ended``); the iterator classifies every failure in
one place (``process_exception``), waits out the backoff, and opens the next. The backoff
starts afresh after a connection that stayed CONNECTED for ``reset_after`` (a frame alone
proves nothing: a server may greet, then refuse), and the iterator ends after ``max_attempts``
failures in a row, or once ``stop()`` is called."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from bridge.errors import SourceError
from bridge.stats.source import REASONS, reason_of
from bridge.upstream.backoff import BackoffPolicy, backoff

logger = logging.getLogger("bridge.upstream")

C = TypeVar("C")
Opener = Callable[[], Awaitable[C | None]]  # None: stop() was called while it was opening
Lost = Callable[[SourceError, str, float | None], None]  # error, reason, delay (None: give up)


class Reconnect(Generic[C]):
    """``async for conn in Reconnect(...)``: each ``conn`` is open; call ``ended`` before the
    next iteration. ``on_lost`` hears of every failure, classified, with the delay before the
    next attempt (None: giving up); ``pause(delay)`` waits it out (early on ``stop()``)."""

    def __init__(self, name: str, policy: BackoffPolicy, opener: Opener[C], on_lost: Lost,
                 pause: Callable[[float], Awaitable[None]], *, clock: Callable[[], float],
                 rand: Callable[[], float] = random.random) -> None:
        self._name, self._policy, self._open, self._on_lost = name, policy, opener, on_lost
        self._pause, self._clock, self._rand = pause, clock, rand
        self._log = logging.LoggerAdapter(logger, {"source": name})
        self._stopped = False
        self._ended: tuple[SourceError | None, bool] = (None, False)

    def stop(self) -> None:
        """No further attempt; the caller interrupts whatever waits (``pause``, the opener)."""
        self._stopped = True

    def ended(self, error: SourceError | None, connected_at: float | None) -> None:
        """How the connection just yielded ended: ``error``, or None when stopped; whether it
        was healthy: it reached CONNECTED at ``connected_at`` and stayed ``reset_after``."""
        healthy = connected_at is not None and \
            self._clock() - connected_at >= self._policy.reset_after
        self._ended = (error, healthy)

    def process_exception(self, exc: BaseException) -> tuple[SourceError, str]:
        """The one place failures are classified: a ``SourceError`` is retried, with its
        reason for logs and metrics; anything else is a bug in the bridge and propagates."""
        if not isinstance(exc, SourceError):
            raise exc
        return exc, reason_of(exc)

    async def __aiter__(self) -> AsyncIterator[C]:
        delays, attempts = backoff(self._policy, self._rand), 0
        while not self._stopped:
            attempts += 1
            try:
                conn = await self._open()
            except Exception as exc:  # noqa: BLE001 - classified, and re-raised if not ours
                (failure, reason), healthy = self.process_exception(exc), False
            else:
                if conn is None:
                    return
                self._ended = (None, False)
                yield conn
                ended, healthy = self._ended
                if ended is None:
                    return
                failure, reason = self.process_exception(ended)
            if healthy:
                delays, attempts = backoff(self._policy, self._rand), 1
            delay = next(delays, None)
            self._on_lost(failure, reason, delay)
            if delay is None:
                self._log.error("source %s: failed, giving up after %d attempts; last: %s: %s",
                                self._name, attempts, REASONS[reason], failure.detail)
                return
            if reason == "requested":  # an operator's action (a control), not a fault
                self._log.info("source %s: reconnecting on request in %.2fs", self._name, delay)
            else:
                self._log.warning("source %s: reconnecting in %.2fs after %s: %s",
                                  self._name, delay, REASONS[reason], failure.detail)
            await self._pause(delay)
