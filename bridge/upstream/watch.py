"""The deadlines that keep a connection honest: heartbeat and pong, idle, quiet channels."""

from __future__ import annotations

from typing import Any

from bridge.config.model import SourceConfig
from bridge.config.specs import HeartbeatSpec
from bridge.upstream.actions import Notice
from bridge.upstream.keepalive import Keepalive
from bridge.upstream.liveness import NEVER, Quiet
from bridge.upstream.plan import Item, step_plan
from bridge.upstream.recovery import Recovery


class Watch:
    """One connection's keepalive (heartbeat, its pong, idle) and, from CONNECTED on, the
    ``expect_every`` deadline of each subscribe step. Times are monotonic seconds."""

    __slots__ = ("_keep", "_pongs", "_quiet", "busy")

    def __init__(self, cfg: SourceConfig | None = None, now: float = 0.0) -> None:
        beat = cfg.heartbeat if cfg else None
        self._keep = Keepalive(beat, cfg.idle_timeout if cfg else 0.0, now)
        self._pongs = beat is not None and beat.expect is not None  # else no message is one
        self._quiet = NEVER
        self.busy = self._pongs  # whether a message means anything to it (``seen``)

    @property
    def next(self) -> float:
        return min(self._keep.next, self._quiet.next)

    def connected(self, cfg: SourceConfig, now: float) -> None:
        """CONNECTED: the heartbeat starts, every ``expect_every`` step is timed from now."""
        self._keep.connected(now)
        self._quiet = Quiet(cfg.subscribe, now)
        self.busy = self._pongs or self._quiet.active

    def subscribing(self) -> None:
        """Not CONNECTED (again): the quiet channels are not watched until it is."""
        self._quiet, self.busy = NEVER, self._pongs

    def seen(self, value: Any, text: str | None, now: float, connected: bool) -> bool:
        """A message came (its JSON ``value``, its frame's ``text``): it keeps its channels
        alive; True when it is the heartbeat's pong."""
        if self._quiet.active:
            self._quiet.seen(value, text, now)
        return self._pongs and self._keep.pong(value, text, connected)

    def timed_out(self, now: float, last_rx: float) -> str | None:
        """"heartbeat" (no pong in time) or "idle" (no message in time), else None."""
        return self._keep.timed_out(now, last_rx)

    def pace(self, every: float, now: float) -> None:
        """The heartbeat's interval became known (or changed): ``every`` seconds."""
        self._keep.pace(every, now)

    def beat(self, now: float) -> HeartbeatSpec | None:
        """The heartbeat to send now, if one is due."""
        return self._keep.beat(now)

    def quiet(self, now: float, cfg: SourceConfig, recovery: Recovery
              ) -> list[tuple[Notice, list[Item]]]:
        """Each ``expect_every`` subscribe step that went quiet by ``now``: a log line and the
        step to send again (no reconnect; counted under ``resubscribe``)."""
        out = []
        for index in self._quiet.due(now) if now >= self._quiet.next else []:
            recovery.counts["resubscribe"] += 1
            recovery.reset()  # the channel may number its messages afresh
            every = cfg.subscribe[index].expect_every
            notice = Notice(f"subscribe[{index}] quiet for {every:g}s; sending it again")
            out.append((notice, step_plan(cfg.subscribe[index])))
        return out
