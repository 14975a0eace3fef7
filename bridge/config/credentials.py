"""Finds credentials in a config: to redact them, keep them off plain ws:// and warn about them."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from bridge.config.explain import entries, leaves, records

_SENSITIVE = re.compile(r"auth|token|secret|key|pass|cookie|session|sig|credential|jwt", re.I)


def find_secrets(doc: Any) -> set[str]:
    """Credentials written literally: MQTT passwords, auth-like headers, URL tokens, auth fields."""
    found: set[str] = set()
    for _, sink in entries(doc.get("sinks") if isinstance(doc, dict) else None):
        if isinstance(sink, dict):
            found |= {str(sink.get("password") or "")} | _url_secrets(sink.get("url"))
    for _, source in records(doc.get("sources") if isinstance(doc, dict) else None):
        found |= _url_secrets(source.get("url")) | _url_secrets(source.get("proxy"))
        for name, value in entries(source.get("headers")):
            if _SENSITIVE.search(str(name)) and isinstance(value, str):
                found |= {value, value.partition(" ")[2]}  # "Bearer abc": the token alone too
        auth = source.get("auth")
        for path, value in leaves(auth.get("send") if isinstance(auth, dict) else None, ()):
            if path and _SENSITIVE.search(str(path[-1])) and isinstance(value, str):
                found.add(value)
    return {s for s in found if isinstance(s, str) and s}


def _split(url: Any) -> SplitResult | None:
    try:
        return urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        return None


def _query(parts: SplitResult | None) -> list[tuple[str, str]]:
    """The URL's query parameters whose names look like credentials."""
    pairs = (pair.partition("=") for pair in parts.query.split("&")) if parts else ()
    return [(name, value) for name, _, value in pairs if value and _SENSITIVE.search(name)]


def _url_secrets(url: Any) -> set[str]:
    parts = _split(url)
    found = {(parts.password or "") if parts else ""}
    for _, value in _query(parts):
        found |= {value, unquote(value)}
    return found | {unquote(s) for s in found}


def sent_credentials(source: dict[str, Any]) -> list[str]:
    """What ``source`` sends as credentials, by name (never by value), e.g. "the auth message"."""
    auth, parts = source.get("auth"), _split(source.get("url"))
    what = ["the auth message"] if isinstance(auth, dict) and auth.get("send") is not None else []
    headers = entries(source.get("headers"))
    what += [f"the {k} header" for k, _ in headers if _SENSITIVE.search(str(k))]
    if parts is not None and (parts.username or parts.password):
        what.append("the user info in the URL")
    return what + [f"the URL query parameter '{unquote(name)}'" for name, _ in _query(parts)]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: localhost, 127.0.0.0/8 or ::1 (also IPv4-mapped)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def insecure_problem(source: dict[str, Any]) -> str | None:
    """Why ``source`` must not run as written: credentials over plain ws:// to another host."""
    url = source.get("url")
    if source.get("allow_insecure") is True or not isinstance(url, str) or "${" in url:
        return None  # an unresolved placeholder is reported on its own
    parts, what = _split(url), sent_credentials(source)
    host = (parts.hostname or "") if parts else ""
    if parts is None or parts.scheme != "ws" or not what or is_loopback(host):
        return None
    listed = " and ".join([", ".join(what[:-1]), what[-1]] if len(what) > 1 else what)
    return (f"{listed} would travel unencrypted over ws:// to {host}, which is not this machine;"
            " use wss://, or set allow_insecure: true if you trust every network hop")


def exposure_warnings(file: str, mode: int, found: set[str]) -> tuple[str, ...]:
    """A warning when ``file`` (``found``: find_secrets before resolving) is readable by others."""
    if not mode & 0o044 or not {s for s in found if "${" not in s}:
        return ()
    who = "everyone" if mode & 0o004 else "its group"
    return (f"{file} holds credentials written in it and is readable by {who}: run chmod 600"
            f" {file}, or move them out with ${{env:NAME}}, ${{file:PATH}} or systemd credentials"
            " (LoadCredential=, then ${file:/run/credentials/<unit>/<name>})",)
