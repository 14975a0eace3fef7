"""NATS client protocol operations, decoded from bytes: ``MSG`` (and ``HMSG``) is the data
message ``{subject, reply, data}`` (the payload JSON-decoded when it is JSON); ``INFO``,
``PING``, ``PONG``, ``+OK`` and ``-ERR`` are the protocol's own. Lengths count bytes, so
frames are read as bytes. Where the bytes end inside an operation, ``read`` says where it
starts and what it needs: a connection's frames are one stream (``nats_stream``)."""

from __future__ import annotations

from typing import Any, Final

from bridge.protocols.text import Part, Parts, broken, json_or_text

_CRLF = b"\r\n"
_CONTROL: Final = frozenset({"PING", "PONG", "+OK"})
_FIELDS: Final = {"MSG": (3, 4), "HMSG": (4, 5)}  # subject sid [reply] [header size] size
_STARTS: Final = tuple(op + end for op in (b"MSG", b"HMSG", b"INFO", b"PING", b"PONG", b"+OK",
                                          b"-ERR") for end in (b" ", b"\r"))


# What ``read`` made of some bytes: the operations they finish, in order; then the one they do
# not: where it starts (the end of the bytes when there is none), how many bytes from there it
# needs (at least), and its payload's size (None: its control line is not finished); last, the
# last INFO's value, if any. A plain tuple: it is made once per frame, on the hot path.
Read = tuple[Parts, int, int, int | None, Any]


def read(buf: bytes) -> Read:
    """The operations in ``buf``; one that is not NATS is ``Undecodable``, and a broken ``MSG``
    line ends the reading (where its payload ends cannot be known)."""
    out: Parts = []
    pos, info = 0, None
    while pos < len(buf):
        if (end := buf.find(_CRLF, pos)) < 0:
            if may_start(buf[pos : pos + 5]):
                return out, pos, len(buf) - pos + 1, None, info
            out.append(broken("nats", "not a NATS server operation", _text(buf[pos:])))
            break
        line = _text(buf[pos:end])
        op, _, args = line.partition(" ")
        op = op.upper()
        if op in _FIELDS:
            fields = args.split()
            size = _int(fields[-1]) if fields else None
            if size is None or len(fields) not in _FIELDS[op]:
                out.append(broken("nats", f"a {op} line that is not NATS's", line))
                break
            if (after := end + 2 + size + 2) > len(buf):  # its payload goes on in a next frame
                return out, pos, after - pos, size, info
            payload, pos = buf[end + 2 : end + 2 + size], after
            if op == "HMSG":  # headers first: NATS/1.0 ... \r\n\r\n, then the payload
                payload, fields = payload[_int(fields[-2]) or 0 :], fields[:-1]
            reply = fields[2] if len(fields) == 4 else None
            out.append(({"subject": fields[0], "reply": reply, "data": json_or_text(
                _text(payload))}, True))
            continue
        pos = end + 2
        if (part := _control(op, args)) is not None:
            info = part[0]["info"] if op == "INFO" else info
            out.append(part)
        elif line:
            out.append(broken("nats", "not a NATS server operation", line))
    return out, len(buf), 0, None, info


def may_start(head: bytes) -> bool:
    """Whether an unfinished line (its first bytes) can be a server operation's."""
    return head == b"\r" or any(s.startswith(head[: len(s)].upper()) for s in _STARTS)


def _control(op: str, args: str) -> Part | None:
    if op == "INFO":
        return {"nats": "INFO", "info": json_or_text(args)}, False
    if op == "-ERR":
        return {"nats": "-ERR", "error": args.strip().strip("'")}, False
    return ({"nats": op}, False) if op in _CONTROL else None


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None
