"""Finds the credentials a config holds and sends: the secrets to redact from every output, and
the names (never the values) of what a source sends as credentials."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from bridge.config.keypaths import entries, leaves, records

_SENSITIVE = re.compile(r"auth|token|secret|key|pass|cookie|session|sig|credential|jwt", re.I)
# A value made at run time ("{http.bullet.json.token}", "{sign.cb}") is not written in the file
_RUN_TIME = re.compile(r"\{(http|sign|jwt|var)\.[^{}]*\}|\{(nonce|uuid|now_\w+)(:[^{}]*)?\}")


def find_secrets(doc: Any) -> set[str]:
    """Credentials written literally: MQTT passwords, auth-like headers, URL tokens, auth fields."""
    found: set[str] = set()
    for _, sink in entries(doc.get("sinks") if isinstance(doc, dict) else None):
        if isinstance(sink, dict):
            found |= {str(sink.get("password") or "")} | _url_secrets(sink.get("url"))
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    found.add(str(metrics.get("tap_token") or "") if isinstance(metrics, dict) else "")
    for _, source in records(doc.get("sources") if isinstance(doc, dict) else None):
        found |= _url_secrets(source.get("url")) | _url_secrets(source.get("proxy"))
        for name, value in entries(source.get("headers")):
            if _SENSITIVE.search(str(name)) and isinstance(value, str):
                found |= {value, value.partition(" ")[2]}  # "Bearer abc": the token alone too
        auth = source.get("auth")
        for path, value in leaves(auth.get("send") if isinstance(auth, dict) else None, ()):
            if path and _SENSITIVE.search(str(path[-1])) and isinstance(value, str):
                found.add(value)
        for path, value in leaves(source.get("protocol"), ()):  # a preset's token, passcode
            if path and _SENSITIVE.search(str(path[-1])) and isinstance(value, str):
                found.add(value)
    return {s for s in found if isinstance(s, str) and s and not _RUN_TIME.search(s)}


def split_url(url: Any) -> SplitResult | None:
    """``url`` taken apart, or None when it is not a string or not a URL (``http://[x``)."""
    try:
        return urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        return None


def _query(parts: SplitResult | None) -> list[tuple[str, str]]:
    """The URL's query parameters whose names look like credentials."""
    pairs = (pair.partition("=") for pair in parts.query.split("&")) if parts else ()
    return [(name, value) for name, _, value in pairs if value and _SENSITIVE.search(name)]


def _url_secrets(url: Any) -> set[str]:
    parts = split_url(url)
    found = {(parts.password or "") if parts else ""}
    for _, value in _query(parts):
        found |= {value, unquote(value)}
    return found | {unquote(s) for s in found}


def sent_credentials(source: dict[str, Any]) -> list[str]:
    """What ``source`` sends as credentials, by name (never by value), e.g. "the auth message"."""
    auth, parts = source.get("auth"), split_url(source.get("url"))
    what = ["the auth message"] if isinstance(auth, dict) and auth.get("send") is not None else []
    protocol = source.get("protocol")
    if isinstance(protocol, dict) and any(_SENSITIVE.search(str(k)) for k in protocol):
        what.append("the protocol's credentials")
    headers = entries(source.get("headers"))
    what += [f"the {k} header" for k, _ in headers if _SENSITIVE.search(str(k))]
    if parts is not None and (parts.username or parts.password):
        what.append("the user info in the URL")
    return what + [f"the URL query parameter '{unquote(name)}'" for name, _ in _query(parts)]
