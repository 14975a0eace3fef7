"""NATS client protocol frames over WebSocket, decoded: ``MSG`` (and ``HMSG``) is the data
message ``{subject, reply, data}`` (the payload JSON-decoded when it is JSON); ``INFO``,
``PING``, ``PONG``, ``+OK`` and ``-ERR`` are the protocol's own. One frame may carry several
operations; lengths count bytes, so the frame is read as bytes."""

from __future__ import annotations

from typing import Final

from bridge.protocols.text import Parts, broken, json_or_text

_CRLF = b"\r\n"
_CONTROL: Final = frozenset({"PING", "PONG", "+OK"})
_FIELDS: Final = {"MSG": (3, 4), "HMSG": (4, 5)}  # subject sid [reply] [header size] size


def decode(frame: str | bytes) -> Parts:
    """One frame as ``[(value, is_data)]``; an operation that is not NATS is ``Undecodable``,
    and a truncated ``MSG`` ends the frame's reading."""
    buf = frame.encode() if isinstance(frame, str) else frame
    out: Parts = []
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
            if size is None or len(fields) not in _FIELDS[op] or pos + size > len(buf):
                out.append(broken("nats", f"a {op} line that does not fit the frame", line))
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
        elif op in _CONTROL:
            out.append(({"nats": op}, False))
        elif line:
            out.append(broken("nats", "not a NATS server operation", line))
    return out


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None
