"""Typed conversions for the config builders that record each failure at its key path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bridge.config.durations import parse_duration
from bridge.config.keypaths import KeyPath
from bridge.config.specs import TLSConfig
from bridge.routing.compiled import PatternError
from bridge.routing.context import TemplateError
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.sinks.settings import QueueConfig
from bridge.upstream.backoff import BackoffPolicy

_DELAYS = {"initial_delay": "initial_delay", "max_delay": "max_delay", "reset_after": "reset_after"}
_NUMBERS: dict[str, Any] = {"multiplier": float, "jitter": float, "max_attempts": int}


class Collector:
    """Problems found so far, each at a key path; typed conversions that record their failures."""

    def __init__(self, read: Callable[[str], bytes] | None = None) -> None:
        self.found: list[tuple[KeyPath, str]] = []
        self.read = read  # reads a file the config names (a descriptor set); None: cannot
        self._texts: dict[str, Template] = {}  # one compiled template per text (immutable)

    def add(self, path: KeyPath, message: str) -> None:
        self.found.append((path, message))

    def template(self, spec: Any, path: KeyPath, consts: dict[str, str] | None = None
                 ) -> Template:
        """The template ``spec``; the same text twice (a thousand sources' topic) is one."""
        if isinstance(spec, str) and not consts and (known := self._texts.get(spec)):
            return known
        try:
            made = Template(spec, consts)
        except TemplateError as exc:
            # The semantic checks already reported each bad string at its own key.
            if not any(p[: len(path)] == path for p, _ in self.found):
                self.add(path, str(exc))
            return Template("")
        if isinstance(spec, str) and not consts:
            self._texts[spec] = made
        return made

    def pattern(self, raw: dict[str, Any], key: str, path: KeyPath) -> Pattern | None:
        """The pattern at ``raw[key]``, or None when the key is absent or null (no message is
        JSON null)."""
        spec = raw.get(key)
        return None if spec is None else self.match(spec, (*path, key))

    def match(self, spec: Any, path: KeyPath) -> Pattern:
        """The pattern ``spec`` (a list: any of them); an unknown operator or a bad operand is
        reported where it is."""
        try:
            return Pattern({"$or": spec} if isinstance(spec, list) and spec else spec)
        except PatternError as exc:
            for at, message in exc.problems:
                inside = at[1:] if isinstance(spec, list) else at  # not under the $or we made
                self.add((*path, *inside), message)
            return Pattern(None)

    def seconds(self, raw: dict[str, Any], path: KeyPath, names: dict[str, str]) -> dict[str, Any]:
        """``{field: seconds}`` for each duration key of ``names`` (yaml key: field) in ``raw``."""
        out = {}
        for key, field in names.items():
            if key in raw:
                try:
                    out[field] = parse_duration(raw[key])
                except ValueError as exc:
                    self.add((*path, key), str(exc))
        return out

    def backoff(self, raw: dict[str, Any], path: KeyPath) -> BackoffPolicy:
        rest = {k: t(raw[k]) for k, t in _NUMBERS.items() if k in raw}
        return BackoffPolicy(**self.seconds(raw, path, _DELAYS), **rest)


def queue(raw: dict[str, Any] | None, default: QueueConfig | None = None) -> QueueConfig:
    return replace(default or QueueConfig(), **(raw or {}))


def tls(raw: dict[str, Any] | None) -> TLSConfig:
    return TLSConfig(**(raw or {}))
