"""The heartbeat of one connection as it is sent: rendered when the watch says it is due,
held while it reads a variable not yet captured, its interval from a template."""

from __future__ import annotations

import math

from bridge.config.durations import parse_duration
from bridge.config.specs import HeartbeatSpec
from bridge.routing.context import TemplateError, Unset
from bridge.upstream.actions import Send
from bridge.upstream.render import Renderer
from bridge.upstream.watch import Watch


class Heartbeat:
    """Sends the heartbeat ``spec`` through ``render``. A heartbeat reading an unset
    ``{var.NAME}`` is held until ``resume`` renders it, for ``spec.timeout`` at most
    (``until``); an ``interval_from`` template is tried at ``pace``, and the watch starts the
    heartbeat once it renders (``"{var.heartbeat_ms}ms"``)."""

    __slots__ = ("_render", "_spec", "until")

    def __init__(self, spec: HeartbeatSpec | None, render: Renderer) -> None:
        self._spec, self._render = spec, render
        self.until = math.inf  # the held heartbeat's deadline; inf: none held

    def pace(self, watch: Watch, now: float) -> None:
        """Tell ``watch`` the interval, if it is a template that renders now; one reading a
        variable not captured yet is not known yet. Raises TemplateError for anything else (a
        response that is not JSON, a value that is no duration)."""
        template = self._spec.interval_from if self._spec is not None else None
        if template is None:
            return
        try:
            value = self._render.value(template, now)
        except Unset:
            return
        try:
            every = parse_duration(value)
        except ValueError:
            raise TemplateError(f"the heartbeat interval {value!r} is not a duration") from None
        watch.pace(every, now)

    def due(self, watch: Watch, now: float) -> list[Send]:
        """The heartbeat, if ``watch`` says it is due and it renders (else it is held).
        Raises TemplateError for a field missing from anything but the variables."""
        beat = watch.beat(now)
        if beat is None:
            return []
        try:
            return [self._render.send(beat.send, now)]
        except Unset:
            if self.until == math.inf:
                self.until = now + beat.timeout
            return []

    def resume(self, watch: Watch, now: float) -> list[Send]:
        """A variable was set: the interval (``pace``), and the held heartbeat, if it renders
        now. Raises TemplateError."""
        self.pace(watch, now)
        if self.until == math.inf or self._spec is None:
            return []
        try:
            send = self._render.send(self._spec.send, now)
        except Unset:
            return []
        self.until = math.inf
        return [send]

    def timed_out(self, now: float) -> bool:
        """Whether a held heartbeat waited its whole timeout for its variables."""
        return now >= self.until
