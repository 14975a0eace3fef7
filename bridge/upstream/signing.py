"""``{sign.NAME}``: HMACs and digests over a rendered message, with the standard library.

A signature is made when a render reads it, over its ``message`` rendered in the same
context, so the timestamp it signs is the one the message carries (one clock per render)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from bridge.config.http_specs import SignSpec
from bridge.routing.context import Context
from bridge.routing.text import to_text


def decode_key(text: str, encoding: str) -> bytes:
    """The key as bytes; raises ValueError (never quoting the key) when it does not decode."""
    if encoding == "raw":
        return text.encode()
    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError(f"the key is not valid {encoding}") from None


def sign(spec: SignSpec, ctx: Context) -> str:
    """The signature of ``spec.message`` rendered with ``ctx``."""
    message = to_text(spec.message.render(ctx)).encode()
    if spec.key is None:
        raw = hashlib.new(spec.digest, message).digest()
    else:
        raw = hmac.new(spec.key, message, spec.digest).digest()
    return raw.hex() if spec.encoding == "hex" else base64.b64encode(raw).decode()


class Made:
    """One render's values of a namespace made on demand (``{sign.NAME}``, ``{jwt.NAME}``):
    each made once per render, the first time it is read."""

    __slots__ = ("_ctx", "_made", "_make", "_specs")

    def __init__(self, specs: dict[str, Any], make: Any, ctx: Context) -> None:
        self._specs, self._make, self._ctx = specs, make, ctx
        self._made: dict[str, str] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __getitem__(self, name: str) -> str:
        if name not in self._made:
            self._made[name] = self._make(self._specs[name], self._ctx)
        return self._made[name]
