"""An HTTP step's request as the driver performs it, and its response as placeholders read it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bridge.routing.context import TemplateError

# Strings of a response shorter than this are not worth masking (true, USD, a status word).
SECRET_MIN = 8
_MAX_SECRETS = 64


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One rendered request of step ``step``; ``generation`` is the connection attempt it
    belongs to (the session drops a late answer to an older one)."""
    step: str
    method: str
    url: str
    headers: dict[str, str]
    timeout: float
    generation: int
    json: Any = None
    form: dict[str, str] | None = None
    body: str | None = field(default=None, repr=False)


class _Headers(dict[str, str]):
    """Response headers; ``{http.NAME.headers.X-Token}`` finds them whatever their case."""

    def __missing__(self, key: str) -> str:
        return self[key.lower()] if key.lower() != key else super().__missing__(key)  # type: ignore[misc]


class HttpResult:
    """A response: ``{http.NAME.status}``, ``.text``, ``.json...``, ``.headers.NAME``."""

    __slots__ = ("_json", "headers", "status", "step", "text")

    def __init__(self, step: str, status: int, text: str, headers: dict[str, str]) -> None:
        self.step, self.status, self.text = step, status, text
        self.headers = _Headers({k.lower(): v for k, v in headers.items()})
        self._json: Any = ...

    @property
    def json(self) -> Any:
        if self._json is ...:
            try:
                self._json = json.loads(self.text)
            except ValueError:
                self._json = None
                raise TemplateError(f"the response of HTTP step {self.step!r} is not JSON "
                                    f"(status {self.status})") from None
        if self._json is None and self.text.strip() != "null":
            raise TemplateError(f"the response of HTTP step {self.step!r} is not JSON")
        return self._json

    def __getitem__(self, key: str) -> Any:
        if key in ("status", "text", "headers", "json"):
            return getattr(self, key)
        raise KeyError(key)

    def secrets(self) -> list[str]:
        """What to keep out of every output: the strings of a JSON body, or a short text."""
        try:
            value = self.json
        except TemplateError:
            text = self.text.strip()
            return [text] if SECRET_MIN <= len(text) <= 4096 else []
        found: list[str] = []
        stack = [value]
        while stack and len(found) < _MAX_SECRETS:
            item = stack.pop()
            if isinstance(item, dict):
                stack += item.values()
            elif isinstance(item, list):
                stack += item
            elif isinstance(item, str) and len(item) >= SECRET_MIN:
                found.append(item)
        return found
