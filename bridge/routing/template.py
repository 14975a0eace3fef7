"""Templates: JSON values and strings with ``{placeholders}``, compiled once, rendered per use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.routing.context import Context, TemplateError
from bridge.routing.lookup import getter
from bridge.routing.text import PLACEHOLDER, Clean, Render, compile_text, to_text

__all__ = ["Context", "Template", "TemplateError"]


class Template:
    """A compiled template; ``render(ctx)`` keeps JSON types, ``render_str`` always gives text.
    A template that is one placeholder (``{msg.seq}``) renders as that placeholder's getter."""

    __slots__ = ("_consts", "_render", "render", "roots", "spec", "static", "uses_message")
    render: Callable[[Context], Any]

    def __init__(self, spec: Any, consts: dict[str, str] | None = None) -> None:
        self.spec, self._consts = spec, consts or {}
        self.roots: set[str] = set()
        self._render = compiled = self._compile(spec)
        self.static = not self.roots
        self.uses_message = "msg" in self.roots
        whole = PLACEHOLDER.fullmatch(spec) if isinstance(spec, str) else None
        if whole and whole.group(1) and not (whole.group(1) in self._consts and not whole.group(2)):
            self.render = getter(*whole.groups())  # one call, no wrapper
        else:
            self.render = lambda ctx: compiled(ctx, None)

    def __eq__(self, other: object) -> bool:  # config reload compares configs by value
        return isinstance(other, Template) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(repr(self.spec))

    def bind(self, values: dict[str, str], clean: Clean = None) -> Template:
        """This template with values that never change for its user ({source}, {hostname})
        filled in once, ``clean``-ed: nothing left to look up for them per message. One that
        reads none of them is itself (shared: a thousand sources' static topic is one)."""
        if self.roots.isdisjoint(values):
            return self
        return Template(self.spec, {k: clean(v) if clean else v for k, v in values.items()})

    def render_str(self, ctx: Context, clean: Clean = None) -> str:
        """Render to text; ``clean`` is applied to each placeholder's value (topic/path safety)."""
        return to_text(self._render(ctx, clean))

    def _compile(self, spec: Any) -> Render:
        if isinstance(spec, dict):
            items = [(k, self._compile(v)) for k, v in spec.items()]
            return lambda c, cl: {k: f(c, cl) for k, f in items}
        if isinstance(spec, list):
            parts = [self._compile(v) for v in spec]
            return lambda c, cl: [f(c, cl) for f in parts]
        if isinstance(spec, str):
            return compile_text(spec, self._consts, self.roots)
        return lambda c, cl: spec
