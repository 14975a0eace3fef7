"""Reads back the file sink's envelope lines as the frames a replayed upstream sends, and when.

The envelope keeps a JSON payload as its value, so the replayed frame is that value as compact
JSON; a text payload that was not JSON is sent as its text, a base64 one as a binary frame.
(A payload that was itself a JSON string comes back as the bare string: the envelope cannot
tell the two apart.)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded message: when it was received (POSIX seconds), from where, and the frame."""

    at: float
    source: str
    frame: str | bytes


def parse_line(line: str | bytes) -> Recorded | None:
    """The message in one envelope line, or None when the line is not one."""
    try:
        obj = json.loads(line)
        at, source, payload = obj["received_at"], obj["source"], obj["payload"]
        if not isinstance(source, str):
            return None
        when = datetime.fromisoformat(at).timestamp()
        return Recorded(when, source, _frame(payload, obj.get("encoding")))
    except (ValueError, TypeError, KeyError):  # bad JSON, time or base64 are ValueErrors
        return None


def _frame(payload: object, encoding: object) -> str | bytes:
    if encoding == "base64":
        if not isinstance(payload, str):
            raise TypeError("a base64 payload is a string")
        return base64.b64decode(payload, validate=True)
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def delay(first: float, at: float, speed: float) -> float:
    """Seconds after the first message that a message recorded at ``at`` is due.

    ``speed`` 1 keeps the recorded pace, 10 is ten times faster, 0 sends at once. Messages
    recorded out of order (clock steps) are due at once rather than in the past.
    """
    if speed <= 0:
        return 0.0
    return max(0.0, (at - first) / speed)
