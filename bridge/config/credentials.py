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
    """Credentials in the config's secret places: MQTT passwords, auth-like headers, URL user info
    and tokens, auth and preset fields, sign and jwt keys, HTTP steps' credentials. Run on the
    resolved document, it finds the ``${env:}`` values that land there too."""
    found: set[str] = set()
    for _, sink in entries(doc.get("sinks") if isinstance(doc, dict) else None):
        if isinstance(sink, dict):
            found |= {str(sink.get(k) or "") for k in ("password", "token")}
            found |= _url_secrets(sink.get("url"))
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    found.add(str(metrics.get("tap_token") or "") if isinstance(metrics, dict) else "")
    for _, source in records(doc.get("sources") if isinstance(doc, dict) else None):
        found |= _url_secrets(source.get("url")) | _url_secrets(source.get("proxy"))
        found |= _header_secrets(source.get("headers"))
        auth = source.get("auth")
        found |= _named_secrets(auth.get("send") if isinstance(auth, dict) else None)
        found |= _named_secrets(source.get("protocol"))  # a preset's token, passcode
        for kind in ("sign", "jwt"):  # the HMAC key, the JWT secret or private key
            specs = [spec for _, spec in entries(source.get(kind)) if isinstance(spec, dict)]
            found |= {str(spec.get("key") or "") for spec in specs}
        for _, step in records(source.get("http")):  # a token request's credentials
            found |= _url_secrets(step.get("url")) | _header_secrets(step.get("headers"))
            found |= _named_secrets([step.get(k) for k in ("json", "form", "body")])
    return {s for s in found if isinstance(s, str) and s and not _RUN_TIME.search(s)}


def _header_secrets(headers: Any) -> set[str]:
    found: set[str] = set()
    for name, value in entries(headers):
        if _SENSITIVE.search(str(name)) and isinstance(value, str):
            found |= {value, value.partition(" ")[2]}  # "Bearer abc": the token alone too
    return found


def _named_secrets(tree: Any) -> set[str]:
    """The strings under a key that names a credential (``access_token``, ``passcode``...)."""
    return {value for path, value in leaves(tree, ())
            if path and _SENSITIVE.search(str(path[-1])) and isinstance(value, str)}


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
