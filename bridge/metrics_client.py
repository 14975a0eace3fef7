"""The client side of a daemon's metrics endpoint: ``ws-bridge status`` and ``ws-bridge tap``."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator

from bridge.stats.snapshot import Snapshot


def endpoint(url: str, path: str) -> urllib.parse.SplitResult:
    """``url`` (http(s)://host:port, or host:port) with ``path`` as its path; ValueError else."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return parts._replace(path=parts.path.rstrip("/").removesuffix(path) + path)


async def fetch_status(url: str) -> Snapshot:
    """The daemon's Snapshot from its metrics ``url``; OSError if unreachable, ValueError if bad."""
    parts = endpoint(url, "/status")

    def get() -> bytes:
        with urllib.request.urlopen(parts.geturl(), timeout=5) as answer:  # noqa: S310 - http(s)
            return answer.read()  # type: ignore[no-any-return]
    raw = await asyncio.to_thread(get)
    try:
        return Snapshot.from_json(json.loads(raw))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{url} did not answer with a ws-bridge status: {error}") from error


def tap_lines(url: str, token: str, sources: list[str]) -> Iterator[bytes]:
    """The envelope lines ``/tap`` streams, as they come (blocking);
    OSError if unreachable, urllib.error.HTTPError (an OSError) if refused."""
    query = urllib.parse.urlencode([("source", name) for name in sources])
    address = endpoint(url, "/tap")._replace(query=query).geturl()
    request = urllib.request.Request(  # noqa: S310 - endpoint(): http(s) only
        address, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as answer:  # noqa: S310 - endpoint(): http(s) only
        yield from answer
