"""Values kept from server messages (``capture``), read as ``{var.NAME}``."""

from __future__ import annotations

from typing import Any

from bridge.config.stateful import CaptureSpec
from bridge.routing.template import TemplateError
from bridge.upstream.render import Renderer


class Captures:
    """The ``capture`` rules of a source and the values they set, kept across connections
    until a new match overwrites them (the dict lives as long as the session)."""

    __slots__ = ("_specs", "active", "values")

    def __init__(self, specs: tuple[CaptureSpec, ...], values: dict[str, Any]) -> None:
        self._specs, self.values = specs, values
        self.active = bool(specs)  # whether messages must be read for it

    def hear(self, value: Any, raw: str | bytes, now: float, render: Renderer) -> bool:
        """``value`` came from the server: set the variables of each rule it matches; True
        when one was set. A template that cannot render leaves its variable as it was; a
        template that is one placeholder keeps its JSON type (``{msg.s}`` stays a number)."""
        changed = False
        for spec in self._specs:
            if not spec.when.matches(value):
                continue
            for name, template in spec.set:
                try:
                    self.values[name] = render.value(template, now, value, raw)
                except TemplateError:
                    continue
                changed = True
        return changed
