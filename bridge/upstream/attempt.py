"""What the session asks its driver around the socket: an HTTP step's request (``Fetch``),
where to connect this attempt (``Dial``), values to keep out of every output (``Redact``).
Part of ``bridge.upstream.actions.Action``."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.upstream.http_result import HttpRequest


@dataclass(frozen=True, slots=True)
class Fetch:
    """Perform this HTTP request, then hand its response (or why it failed) to ``fetched``."""
    request: HttpRequest


@dataclass(frozen=True, slots=True)
class Dial:
    """Open the connection now, to ``url`` with ``headers`` (rendered for this attempt)."""
    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Redact:
    """Keep these values (tokens from a response) out of every output from now on."""
    values: tuple[str, ...] = field(repr=False)
