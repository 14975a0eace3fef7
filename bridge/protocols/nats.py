"""NATS client protocol frames over WebSocket, decoded: ``MSG`` (and ``HMSG``) is the data
message ``{subject, reply, data}`` (the payload JSON-decoded when it is JSON); ``INFO``,
``PING``, ``PONG``, ``+OK`` and ``-ERR`` are the protocol's own. One frame may carry several
operations; lengths count bytes, so the frame is read as bytes."""

from __future__ import annotations

from typing import Any

from bridge.protocols.text import json_or_text

_CRLF = b"\r\n"


def decode(frame: str | bytes) -> list[tuple[Any, bool]]:
    """One frame as ``[(value, is_data)]``; a truncated operation ends the frame's reading."""
    buf = frame.encode() if isinstance(frame, str) else frame
    out: list[tuple[Any, bool]] = []
    pos = 0
    while pos < len(buf):
        end = buf.find(_CRLF, pos)
        if end < 0:
            end = len(buf)
        line = buf[pos:end].decode("utf-8", errors="replace")
        pos = end + 2
        op, _, args = line.partition(" ")
        op = op.upper()
        if op in ("MSG", "HMSG"):
            fields = args.split()
            size = _int(fields[-1]) if fields else None
            if size is None or len(fields) < 3 or pos + size > len(buf):
                out.append(({"nats": "unknown", "line": line[:200]}, False))
                break
            payload = buf[pos : pos + size]
            pos += size + 2
            if op == "HMSG":  # headers first: NATS/1.0 ... \r\n\r\n, then the payload
                head = _int(fields[-2]) or 0
                payload, fields = payload[head:], fields[:-1]
            reply = fields[2] if len(fields) == 4 else None
            data = json_or_text(payload.decode("utf-8", errors="replace"))
            out.append(({"subject": fields[0], "reply": reply, "data": data}, True))
        elif op == "INFO":
            out.append(({"nats": "INFO", "info": json_or_text(args)}, False))
        elif op == "-ERR":
            out.append(({"nats": "-ERR", "error": args.strip().strip("'")}, False))
        elif line:
            out.append(({"nats": op}, False))
    return out


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None
