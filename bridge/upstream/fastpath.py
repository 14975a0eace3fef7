"""What the driver may skip, the session's fast paths: frames passed on unread (``Unread``),
or read by dedup and sequence only. Both need CONNECTED with nothing to match."""

from __future__ import annotations

from bridge.upstream.actions import Action, Unread
from bridge.upstream.lifecycle import Lifecycle
from bridge.upstream.outbound import Outbound
from bridge.upstream.plan import reads_data
from bridge.upstream.state import ConnState


class FastPath:
    """``passing``: frames pass unread; ``checks_only``: only dedup and sequence read them;
    ``told``: what the driver was last told (``Unread``)."""

    __slots__ = ("_life", "_out", "checks_only", "passing", "told")

    def __init__(self, life: Lifecycle, out: Outbound) -> None:
        self._life, self._out = life, out
        self.passing = self.checks_only = self.told = False

    def mode(self, live: bool) -> None:
        """Both need CONNECTED with nothing to match (no reply, pong, quiet channel, capture,
        renewal request or call to answer)."""
        life, calls = self._life, self._out.calls
        cfg = life.talk.cfg
        quiet = live and life.state is ConnState.CONNECTED and not reads_data(cfg) and \
            not (calls is not None and calls.waiting)
        self.checks_only = quiet and life.recovery.active
        self.passing = quiet and not self.checks_only and cfg.on_invalid == "forward"

    def tell(self) -> list[Action]:
        """``Unread`` when ``passing`` changed since the driver was last told (``told``)."""
        if self.passing is self.told:
            return []
        self.told = self.passing
        return [Unread(self.passing)]
