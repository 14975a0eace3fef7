"""Templates: JSON values and strings with ``{placeholders}``, compiled once, rendered per use."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from bridge.routing.context import Context, TemplateError
from bridge.routing.lookup import Getter, getter

__all__ = ["Context", "Template", "TemplateError"]
Clean = Callable[[str], str] | None  # what a rendered value passes through, if anything

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)((?:\.[\w-]+|\[\d+\])*)\}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if type(value) is int or type(value) is float:  # their JSON is str(); bool is not
        return str(value)
    if isinstance(value, bytes):
        raise TemplateError("the frame is binary: it cannot be put into text")
    return json.dumps(value, separators=(",", ":"))


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
        whole = _PLACEHOLDER.fullmatch(spec) if isinstance(spec, str) else None
        if whole and whole.group(1) and not (whole.group(1) in self._consts and not whole.group(2)):
            self.render = getter(whole.group(1), whole.group(2))  # one call, no wrapper
        else:
            self.render = lambda ctx: compiled(ctx, None)

    def __eq__(self, other: object) -> bool:  # config reload compares configs by value
        return isinstance(other, Template) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(repr(self.spec))

    def bind(self, values: dict[str, str], clean: Clean = None) -> Template:
        """This template with values that never change for its user ({source}, {hostname})
        filled in once, ``clean``-ed: nothing left to look up for them per message."""
        return Template(self.spec, {k: clean(v) if clean else v for k, v in values.items()})

    def render_str(self, ctx: Context, clean: Clean = None) -> str:
        """Render to text; ``clean`` is applied to each placeholder's value (topic/path safety)."""
        return _text(self._render(ctx, clean))

    def _compile(self, spec: Any) -> Callable[[Context, Clean], Any]:  # noqa: PLR0911 - a shape each
        if isinstance(spec, dict):
            items = [(k, self._compile(v)) for k, v in spec.items()]
            return lambda c, cl: {k: f(c, cl) for k, f in items}
        if isinstance(spec, list):
            parts = [self._compile(v) for v in spec]
            return lambda c, cl: [f(c, cl) for f in parts]
        if not isinstance(spec, str):
            return lambda c, cl: spec
        pieces: list[str | Getter] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(spec):
            pieces.append(spec[pos : m.start()])
            root, pos = m.group(1), m.end()
            if root is None or (root in self._consts and not m.group(2)):
                pieces.append(m.group(0)[0] if root is None else self._consts[root])
                continue
            pieces.append(getter(root, m.group(2)))
            self.roots.add(root)
        pieces = [p for p in [*pieces, spec[pos:]] if p != ""]
        if all(isinstance(p, str) for p in pieces):
            text = "".join(p for p in pieces if isinstance(p, str))
            return lambda c, cl: text
        if len(pieces) == 1 and not isinstance(only := pieces[0], str):  # keeps its JSON type
            return lambda c, cl: only(c) if cl is None else cl(_text(only(c)))
        getters = [p for p in pieces if not isinstance(p, str)]  # the text around them: a format
        fmt = "".join("{}" if not isinstance(p, str) else p.replace("{", "{{").replace("}", "}}")
                      for p in pieces).format
        if len(getters) == 1:  # the usual topic, e.g. "trades/{msg.symbol}"
            one = getters[0]
            return lambda c, cl: fmt(_text(one(c)) if cl is None else cl(_text(one(c))))
        return lambda c, cl: fmt(*[  # a list, not a generator: faster on a few
            _text(g(c)) if cl is None else cl(_text(g(c))) for g in getters])
