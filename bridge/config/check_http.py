"""Reads of ``{http.NAME...}`` checked against the source's HTTP steps: a step that does not
exist, or one that has not run yet when the read happens (a ``connect`` step reading a later
one, the URL or the headers reading a step that runs only once connected)."""

from __future__ import annotations

import re
from typing import Any

from bridge.config.keypaths import KeyPath, Report, leaves, records

_READ = re.compile(r"\{http\.([\w-]+)")
_BEFORE_CONNECTING = ("url", "headers")


def check_http(source: dict[str, Any], path: KeyPath, report: Report) -> None:
    """Report every ``{http.NAME}`` read that can find no response when it is rendered."""
    steps = [s for _, s in records(source.get("http"))]
    order = {s.get("name"): (i, s.get("on", "connect")) for i, s in enumerate(steps)}
    for where, text in leaves({k: v for k, v in source.items() if k != "routes"}, path):
        if not isinstance(text, str):
            continue
        for name in _READ.findall(text):
            if name not in order:
                known = ", ".join(str(n) for n in order) or "none"
                report(where, f"{{http.{name}...}} reads an HTTP step that does not exist "
                              f"(steps: {known})")
            elif problem := _too_early(where[len(path):], order[name], order):
                report(where, f"{{http.{name}...}} {problem}")


def _too_early(key: KeyPath, read: tuple[int, str], order: dict[Any, tuple[int, str]]
               ) -> str | None:
    index, on = read
    if key[:1] == ("http",) and isinstance(key[1], int):  # another step's request
        mine = next((o for i, o in order.values() if i == key[1]), "connect")
        if mine == "connect" and (on != "connect" or index >= key[1]):
            return f"reads a step that runs later than http[{key[1]}]"
        return None
    if key[:1] and key[0] in _BEFORE_CONNECTING and on != "connect":
        return f"reads a step that runs only once connected (on: {on}), after the {key[0]}"
    return None
