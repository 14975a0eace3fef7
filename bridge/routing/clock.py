"""Placeholders that read the clock or chance: ``{now_ms}``, ``{now_s}``, ``{now_iso}`` (each
may be offset by a duration: ``{now_ms:+10s}``, ``{now_s:-1m}``), ``{nonce}`` and ``{uuid}``.

One clock per render: every clock placeholder reads the context's one ``now``, and ``{nonce}``
is drawn once per render (kept in ``Context.once``), so a timestamp field and the signature
over it always agree."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from bridge.config.durations import parse_duration
from bridge.routing.context import Context, TemplateError

CLOCK: Final = frozenset({"now_ms", "now_s", "now_iso"})
CHANCE: Final = frozenset({"nonce", "uuid"})


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


_READ: Final[dict[str, Callable[[float], Any]]] = {
    "now_ms": lambda now: int(now * 1000),
    "now_s": int,
    "now_iso": _iso,
}


def _nonce(ctx: Context) -> str:
    """16 random bytes as hex, the same for the whole render."""
    once = ctx.once
    if "nonce" not in once:
        once["nonce"] = secrets.token_hex(16)
    return str(once["nonce"])


def clock_getter(root: str, offset: str | None) -> Callable[[Context], Any]:
    """The getter of a clock or chance placeholder; ``offset`` is e.g. ``+10s`` or ``-1m``."""
    if root in CHANCE:
        if offset is not None:
            raise TemplateError(f"{{{root}}} takes no time offset")
        return _nonce if root == "nonce" else lambda ctx: str(uuid.uuid4())
    read = _READ[root]
    if offset is None:
        return lambda ctx: read(ctx.now)
    try:
        shift = parse_duration(offset[1:]) * (-1 if offset[0] == "-" else 1)
    except ValueError:
        raise TemplateError(f"{{{root}:{offset}}}: the offset is not a duration "
                            f"(write e.g. {{{root}:+10s}} or {{{root}:-1m}})") from None
    return lambda ctx: read(ctx.now + shift)
