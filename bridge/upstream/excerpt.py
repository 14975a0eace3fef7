"""A server's message as a log line shows it (a rejection's reason, refused items)."""

from __future__ import annotations

import json
from typing import Any

from bridge.messages import INVALID

EXCERPT = 200  # characters of a server's message shown in a log line (a rejection's reason)


def excerpt(text: str | None, value: Any) -> str:
    """A server's message as a log line shows it: its text (else its JSON), control characters
    escaped, at most ``EXCERPT`` characters. Secrets in it are redacted by the log filter."""
    if text is None:
        text = "(binary)" if value is INVALID else json.dumps(value, separators=(",", ":"))
    shown = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return shown if len(shown) <= EXCERPT else shown[: EXCERPT - 3] + "..."
