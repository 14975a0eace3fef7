"""Line formats shared by the stdout and file sinks.

``raw`` writes the payload, one message per line. A text payload's CR and LF characters are
each written as a space: in valid JSON they can only be whitespace between tokens, so a
pretty-printed JSON frame stays one line of equal JSON. Binary payloads are base64.

``envelope`` writes one compact JSON object per line: ``received_at`` (ISO 8601 UTC, ms),
``source``, ``topic`` (when the route set one) and ``payload``, which is the JSON value when
the payload is JSON and the text otherwise; a binary payload is base64 and the object adds
``"encoding": "base64"``.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from typing import Any

from bridge.messages import INVALID, Delivery, decode_json
from bridge.sinks.settings import Format


def iso_utc(t: float) -> str:
    """``2026-11-27T13:00:00.123Z`` for a POSIX time."""
    secs, ms = divmod(round(t * 1000), 1000)
    return f"{_second(secs)}.{ms:03d}Z"


@functools.lru_cache(maxsize=4)  # a stream's timestamps share their second: format it once
def _second(secs: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


def payload_json(delivery: Delivery) -> Any:
    """The payload's JSON value, or ``INVALID``; the frame itself reuses the message's parse."""
    payload = delivery.payload
    if payload is delivery.message.data:
        return delivery.message.json
    return decode_json(payload)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def envelope(delivery: Delivery) -> str:
    """The envelope JSON object for one delivery, without the line end."""
    msg = delivery.message
    obj: dict[str, Any] = {"received_at": iso_utc(msg.received_at), "source": msg.source}
    if delivery.topic is not None:
        obj["topic"] = delivery.topic
    payload = delivery.payload
    if isinstance(payload, bytes):
        obj["payload"] = base64.b64encode(payload).decode("ascii")
        obj["encoding"] = "base64"
        return _dumps(obj)
    value = payload_json(delivery)
    obj["payload"] = payload if value is INVALID else value
    try:
        return _dumps(obj)
    except ValueError:  # NaN or Infinity parsed from the frame are not JSON: keep the text
        obj["payload"] = payload
        return _dumps(obj)


def raw_line(payload: str | bytes) -> bytes:
    """The payload as one line, without the line end."""
    if isinstance(payload, bytes):
        return base64.b64encode(payload)
    if "\n" in payload or "\r" in payload:
        payload = payload.replace("\r", " ").replace("\n", " ")
    return payload.encode(errors="replace")


def raw_block(payloads: list[str | bytes]) -> bytes | None:
    """Text payloads as raw lines in one piece (the file sink's batch), or None when one of
    them needs ``raw_line``'s care: binary, or holding a line break."""
    try:
        text = "\n".join(payloads)  # type: ignore[arg-type]  # bytes: TypeError, handled
    except TypeError:
        return None
    if text.count("\n") != len(payloads) - 1 or "\r" in text:
        return None
    return (text + "\n").encode(errors="replace")


def format_line(delivery: Delivery, fmt: Format) -> bytes:
    """One delivery as one line of ``fmt``, ending in ``\\n``."""
    if fmt == "raw":
        return raw_line(delivery.payload) + b"\n"
    return envelope(delivery).encode(errors="replace") + b"\n"
