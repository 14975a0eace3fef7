"""Upstream URLs: what may be shown of one, and whether it goes through a proxy. Pure."""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Literal


def safe_url(url: str) -> str:
    """The URL for messages: no user info, no query, no fragment (they may hold tokens)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme and url.startswith("{"):  # a template: "{http.bullet.json.endpoint}?..."
        return url.partition("?")[0].partition("#")[0]
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def proxy_for(url: str, proxy: str | None) -> str | Literal[True] | None:
    """The configured proxy (``""``: none); else the environment's (True), except for loopback
    hosts, as ``no_proxy`` would."""
    if proxy is not None:
        return proxy or None
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return None
    try:
        return None if ipaddress.ip_address(host).is_loopback else True
    except ValueError:
        return True
