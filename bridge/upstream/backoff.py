"""Exponential backoff with jitter, and the retry-or-give-up decision; pure functions."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """``reconnect:`` in the config; ``max_attempts`` 0 means retry forever; the delays start
    afresh once a connection has stayed CONNECTED for ``reset_after`` seconds."""

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int = 0
    reset_after: float = 10.0


def backoff(policy: BackoffPolicy, rand: Callable[[], float] = random.random) -> Iterator[float]:
    """Yield successive delays: initial * multiplier**n, capped, each spread by +-jitter.

    The generator ends after ``max_attempts`` delays (never, when it is 0).
    """
    delay = policy.initial_delay
    attempt = 0
    while policy.max_attempts == 0 or attempt < policy.max_attempts:
        attempt += 1
        spread = delay * policy.jitter * (2 * rand() - 1)
        yield max(0.0, min(policy.max_delay, delay + spread))
        delay = min(policy.max_delay, delay * policy.multiplier)
