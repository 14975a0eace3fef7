"""Messages the session sends, rendered with one connection's ``{seq}``, as text frames."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from typing import Any

from bridge.errors import SourceError
from bridge.messages import INVALID
from bridge.routing.template import Context, Template, TemplateError
from bridge.upstream.actions import Action, Fail, Send
from bridge.upstream.state import Event


class Renderer:
    """Renders the templates of one source; ``{seq}`` counts from 1 again after ``restart``
    (every connection), ``{now_ms}`` reads ``wall`` (else the monotonic time passed in).

    ``names`` are the run-time namespaces the session fills (``{http...}``, ``{var...}``:
    the values ``capture`` keeps, in ``var``); ``derived`` the ones made afresh for each
    render from its context (``{sign...}``)."""

    __slots__ = ("_hostname", "_name", "_seq", "_wall", "derived", "names")

    def __init__(self, name: str, hostname: str, wall: Callable[[], float] | None) -> None:
        self._name, self._hostname, self._wall = name, hostname, wall
        self._seq: Iterator[int] = itertools.count(1)
        self.names: dict[str, Any] = {"var": {}}
        self.derived: dict[str, Callable[[Context], Any]] = {}

    def restart(self) -> None:
        self._seq = itertools.count(1)

    def twin(self) -> Renderer:
        """A renderer for a successor connection: its own ``{seq}``, the same namespaces
        (shared, not copied: what one captures, the other reads)."""
        twin = Renderer(self._name, self._hostname, self._wall)
        twin.names, twin.derived = self.names, self.derived
        return twin

    def send(self, template: Template, now: float, msg: Any = INVALID, raw: Any = "",
             mqtt: Any = None) -> Send:
        """One message; ``msg``/``raw`` are what {msg.*} reads, ``mqtt`` what {mqtt.*} reads.
        Raises TemplateError when a field it needs is missing (``Unset``: a variable)."""
        value = self.value(template, now, msg, raw, mqtt)
        return Send(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))

    def wall(self, now: float) -> float:
        """The wall-clock time (``{now_ms}``) at monotonic ``now``."""
        return self._wall() if self._wall else now

    def value(self, template: Template, now: float, msg: Any = INVALID, raw: Any = "",
              mqtt: Any = None) -> Any:
        """``template`` rendered, its JSON types kept. Raises TemplateError."""
        return template.render(self.context(now, msg, raw, mqtt))

    def context(self, now: float, msg: Any = INVALID, raw: Any = "", mqtt: Any = None
                ) -> Context:
        """One render's context: one clock reading, the namespaces as they are now."""
        ctx = Context(self._name, msg, raw, self.wall(now), self._seq.__next__, self._hostname,
                      mqtt, names=self.names)
        if self.derived:
            ctx.names = {**self.names, **{k: make(ctx) for k, make in self.derived.items()}}
        return ctx

    def mqtt(self, template: Template, now: float, mqtt: Any) -> str:
        """A message from MQTT to send upstream, ``mqtt`` being what {mqtt.*} reads."""
        return self.send(template, now, mqtt=mqtt).data

    def each(self, templates: Iterable[Template], now: float) -> list[Send]:
        """Every template that renders (unsubscribe messages: one that cannot is skipped)."""
        out = []
        for template in templates:
            with suppress(TemplateError):
                out.append(self.send(template, now))
        return out

    def guard(self, make: Callable[[float, Any], Sequence[Action | Event]], now: float,
              arg: Any) -> list[Action | Event]:
        """``make(now, arg)``, or a ``Fail`` when a message in it cannot render: the callers
        never raise for a template."""
        try:
            return list(make(now, arg))
        except TemplateError as exc:
            return [Fail(SourceError(self._name, f"cannot render a message to send: {exc}"))]
