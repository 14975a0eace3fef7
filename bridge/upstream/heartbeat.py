"""The heartbeat of one connection as it is sent: rendered when the watch says it is due,
held while it reads a variable not yet captured, its interval from a template."""

from __future__ import annotations

import math
from typing import Any

from bridge.config.durations import parse_duration
from bridge.config.specs import HeartbeatSpec
from bridge.routing.context import TemplateError, Unset
from bridge.upstream.actions import Notice, Send
from bridge.upstream.render import Renderer
from bridge.upstream.watch import Watch


class Heartbeat:
    """Sends the heartbeat ``spec`` through ``render``. A heartbeat reading an unset
    ``{var.NAME}`` is held until ``resume`` renders it, for ``spec.timeout`` at most
    (``until``); an ``interval_from`` template is tried at ``pace``, and the watch starts the
    heartbeat once it renders (``"{var.heartbeat_ms}ms"``)."""

    __slots__ = ("_bad", "_render", "_spec", "until")

    def __init__(self, spec: HeartbeatSpec | None, render: Renderer) -> None:
        self._spec, self._render = spec, render
        self.until = math.inf  # the held heartbeat's deadline; inf: none held
        self._bad: Any = None  # the last interval that was no duration (said once)

    def pace(self, watch: Watch, now: float) -> list[Notice]:
        """Tell ``watch`` the interval, if it is a template that renders now; a log line for
        a value that is no duration, once per value."""
        template = self._spec.interval_from if self._spec is not None else None
        if template is None:
            return []
        try:
            value = self._render.value(template, now)
        except TemplateError:
            return []  # not known yet
        try:
            every = parse_duration(value)
        except ValueError:
            said, self._bad = value != self._bad, value
            why = f"the heartbeat interval {value!r} is not a duration: no heartbeat until it is"
            return [Notice(why)] if said else []
        watch.pace(every, now)
        return []

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

    def resume(self, now: float) -> list[Send]:
        """A variable was set: the held heartbeat, if it renders now. Raises TemplateError."""
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
