"""Finds credentials written literally in a config, so that every output can redact them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from bridge.config.explain import entries, leaves, records

_SENSITIVE = re.compile(r"auth|token|secret|key|pass|cookie|session|sig|credential|jwt", re.I)


def find_secrets(doc: Any) -> set[str]:
    """Credentials written literally: MQTT passwords, auth-like headers, URL tokens, auth fields."""
    found: set[str] = set()
    for _, sink in entries(doc.get("sinks") if isinstance(doc, dict) else None):
        if isinstance(sink, dict):
            found |= {sink.get("password") or ""} | _url_secrets(sink.get("url"))
    for _, source in records(doc.get("sources") if isinstance(doc, dict) else None):
        found |= _url_secrets(source.get("url")) | _url_secrets(source.get("proxy"))
        for name, value in entries(source.get("headers")):
            if _SENSITIVE.search(str(name)) and isinstance(value, str):
                found |= {value, value.partition(" ")[2]}  # "Bearer abc": the token alone too
        auth = source.get("auth")
        for path, value in leaves(auth.get("send") if isinstance(auth, dict) else None, ()):
            if path and _SENSITIVE.search(str(path[-1])):
                found.add(value)
    return {s for s in found if isinstance(s, str) and s}


def _url_secrets(url: Any) -> set[str]:
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        return set()
    if parts is None:
        return set()
    found = {parts.password or ""}
    for name, _, value in (pair.partition("=") for pair in parts.query.split("&")):
        if _SENSITIVE.search(name):
            found |= {value, unquote(value)}
    return found | {unquote(s) for s in found}
