"""When the HTTP steps of a live connection run: ``every`` steps on their interval, from
CONNECTED on, and ``subscribed`` steps once after each (re)subscribe. Deadlines, never sleeps."""

from __future__ import annotations

import math

from bridge.config.http_specs import HttpStep


class StepTimers:
    """The next run of each timed step; ``next`` is the earliest (``inf``: none). ``out``:
    the ``every`` steps whose request has not answered yet (their turn is skipped until then)."""

    __slots__ = ("_steps", "_when", "next", "out")

    def __init__(self, steps: tuple[HttpStep, ...]) -> None:
        self._steps = [s for s in steps if s.on in ("every", "subscribed")]
        self._when: dict[str, float] = {}
        self.next = math.inf
        self.out: set[str] = set()

    def stop(self) -> None:
        """The connection is over: nothing runs until the next one is subscribed."""
        self._when.clear()
        self.next, self.out = math.inf, set()

    def subscribed(self, now: float) -> None:
        """(Re)subscribed: the ``subscribed`` steps are due now; the ``every`` timers start
        (a resubscribe leaves running ones as they are)."""
        for step in self._steps:
            if step.on == "subscribed" or step.name not in self._when:
                self._when[step.name] = now + step.every
        self.next = min(self._when.values(), default=math.inf)

    def due(self, now: float) -> list[HttpStep]:
        """The steps to run now; an ``every`` step is timed again from now, and runs only
        when its previous request answered (a slow endpoint gets one request at a time)."""
        due = [step for step in self._steps if self._when.get(step.name, math.inf) <= now]
        for step in due:
            if step.on == "subscribed":
                del self._when[step.name]
            else:
                self._when[step.name] = now + step.every
        self.next = min(self._when.values(), default=math.inf)
        run = [s for s in due if s.on == "subscribed" or s.name not in self.out]
        self.out.update(s.name for s in run if s.on == "every")
        return run
