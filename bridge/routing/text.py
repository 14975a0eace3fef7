"""One string with ``{placeholders}`` compiled into the cheapest function that renders it.

A template compiles each string of its spec here, once, when the config loads. What comes out
is fixed text, a lone placeholder that keeps its JSON type, or one ``str.format`` over the
placeholders' values, so rendering parses nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from bridge.routing.context import Context, TemplateError
from bridge.routing.lookup import ROOTS, Getter, getter

# {root<path>} or {root:+DURATION} (a clock offset); {{ and }} are literal braces
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)((?:\.[\w-]+|\[\d+\])*)(?::([+-][\w.]+))?\}")
# Text whose braces are likely literal: a GraphQL document, JSON written inside a string.
_LITERAL = re.compile(r'^\s*(query|subscription|mutation|fragment)\b|\{\s*["{]|["}]\s*\}|"\s*:')
Clean = Callable[[str], str] | None  # what a rendered value passes through, if anything
Render = Callable[[Context, Clean], Any]


def to_text(value: Any) -> str:
    """A rendered value as text: strings as they are, numbers as in JSON, the rest as JSON."""
    if isinstance(value, str):
        return value
    if type(value) is int or type(value) is float:  # their JSON is str(); bool is not
        return str(value)
    if isinstance(value, bytes):
        raise TemplateError("the frame is binary: it cannot be put into text")
    return json.dumps(value, separators=(",", ":"))


def compile_text(spec: str, consts: dict[str, str], roots: set[str]) -> Render:
    """The render function of ``spec``; ``consts`` fill their placeholders now, and the roots
    of the placeholders left for render time are added to ``roots``."""
    pieces: list[str | Getter] = []
    pos = 0
    for m in PLACEHOLDER.finditer(spec):
        pieces.append(spec[pos : m.start()])
        root, pos = m.group(1), m.end()
        if root is None or (root in consts and not m.group(2) and not m.group(3)):
            pieces.append(m.group(0)[0] if root is None else consts[root])
            continue
        pieces.append(_getter(spec, root, m.group(2), m.group(3)))
        roots.add(root)
    pieces = [p for p in [*pieces, spec[pos:]] if p != ""]
    if all(isinstance(p, str) for p in pieces):
        text = "".join(p for p in pieces if isinstance(p, str))
        return lambda c, cl: text
    if len(pieces) == 1 and not isinstance(only := pieces[0], str):  # keeps its JSON type
        return lambda c, cl: only(c) if cl is None else cl(to_text(only(c)))
    return _formatted(pieces)


def _getter(spec: str, root: str, path: str, offset: str | None) -> Getter:
    """The getter of one placeholder; an unknown one in text that looks like a GraphQL query
    or JSON gets a hint: its braces were probably meant literally."""
    try:
        return getter(root, path, offset)
    except TemplateError as exc:
        if root in ROOTS or not _LITERAL.search(spec):
            raise
        hint = "if these braces are literal text (a GraphQL query, JSON), write {{ and }}"
        raise TemplateError(f"{exc}; {hint}") from None


def _formatted(pieces: list[str | Getter]) -> Render:
    """Text around placeholders: one ``str.format`` of the values, each cleaned if asked."""
    getters = [p for p in pieces if not isinstance(p, str)]
    fmt = "".join(
        "{}" if not isinstance(p, str) else p.replace("{", "{{").replace("}", "}}") for p in pieces
    ).format
    if len(getters) == 1:  # the usual topic, e.g. "trades/{msg.symbol}"
        one = getters[0]
        return lambda c, cl: fmt(to_text(one(c)) if cl is None else cl(to_text(one(c))))
    # A list, not a generator: faster for a few values.
    return lambda c, cl: fmt(*[to_text(g(c)) if cl is None else cl(to_text(g(c))) for g in getters])
