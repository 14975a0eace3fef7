"""The typed parts of a source that reach beyond its WebSocket: HTTP steps, signatures, JWTs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.routing.template import Template

When = Literal["connect", "every", "subscribed"]
BodyKind = Literal["none", "json", "form", "body"]


@dataclass(frozen=True, slots=True)
class HttpStep:
    """One HTTP request around the session, read afterwards as ``{http.NAME...}``.

    ``on``: before every connection attempt (connect, in order), on a timer while connected
    (every ``every`` seconds), or after every (re)subscribe. ``expect_status`` empty: any 2xx."""
    name: str
    url: Template
    on: When = "connect"
    every: float = 0.0
    method: str = "GET"
    headers: Template = field(default_factory=lambda: Template({}))
    body_kind: BodyKind = "none"
    body: Template | None = None
    expect_status: tuple[int, ...] = ()
    timeout: float = 10.0
    on_error: Literal["log", "reconnect"] = "log"
    deliver: bool = False

    def accepts(self, status: int) -> bool:
        return status in self.expect_status if self.expect_status else 200 <= status < 300


@dataclass(frozen=True, slots=True)
class SignSpec:
    """``{sign.NAME}``: an HMAC (``key`` set) or a plain digest of the rendered ``message``."""
    name: str
    digest: str
    message: Template
    key: bytes | None = None
    encoding: Literal["hex", "base64"] = "hex"


@dataclass(frozen=True, slots=True)
class JwtSpec:
    """``{jwt.NAME}``: a token signed with ``key``; nbf = now, exp = now + ``ttl``."""
    name: str
    algorithm: str
    key: str = field(repr=False)
    headers: Template = field(default_factory=lambda: Template({}))
    claims: Template = field(default_factory=lambda: Template({}))
    ttl: float = 120.0
