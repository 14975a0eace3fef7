"""STOMP 1.2 frames over WebSocket, decoded and encoded: ``MESSAGE`` is the data message
``{destination, headers, body}`` (the body JSON-decoded when it is JSON); ``CONNECTED``,
``RECEIPT``, ``ERROR`` and heart-beats (bare end-of-lines) are the protocol's own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from bridge.protocols.text import Parts, as_text, broken, json_or_text

SUBPROTOCOLS: Final = ("v12.stomp", "v11.stomp", "v10.stomp")
SERVER_FRAMES: Final = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})
_ESCAPES: Final = (("\\\\", "\\"), ("\\n", "\n"), ("\\r", "\r"), ("\\c", ":"))


def decode(frame: str | bytes) -> Parts:
    """One WebSocket frame (one or more STOMP frames, each ended by NUL) as
    ``[(value, is_data)]``, a piece that is not a server's STOMP frame as ``Undecodable``."""
    whole = as_text(frame)
    if not whole.strip("\r\n"):  # end-of-lines alone: the server's heart-beat
        return [({"stomp": "heartbeat"}, False)]
    out: Parts = []
    for chunk in whole.split("\0"):
        text = chunk.lstrip("\r\n")  # the end-of-lines a server may put after each frame
        if not text:
            continue
        head, _, body = text.partition("\n\n")
        command, *lines = head.replace("\r\n", "\n").split("\n")
        if command not in SERVER_FRAMES:
            out.append(broken("stomp", "not a STOMP server frame", chunk))
            continue
        headers: dict[str, str] = {}
        for line in lines:
            key, _, value = line.partition(":")
            headers.setdefault(_unescape(key), _unescape(value))  # the first one counts
        if command == "MESSAGE":
            message = {"destination": headers.get("destination"), "headers": headers,
                       "body": json_or_text(body)}
            out.append((message, True))
        else:
            out.append(({"stomp": command, "headers": headers, "body": body}, False))
    return out


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        pair = text[i : i + 2]
        plain = next((p for e, p in _ESCAPES if e == pair), None)
        out.append(plain if plain is not None else text[i])
        i += 2 if plain is not None else 1
    return "".join(out)


def escape(text: str) -> str:
    """A header value as STOMP 1.2 writes it (not in CONNECT, which takes values as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r") \
        .replace(":", "\\c")


def frame(command: str, headers: Iterable[tuple[str, str]], body: str = "") -> str:
    """One STOMP frame: command, ``key:value`` lines, a blank line, the body, NUL."""
    lines = [command, *(f"{k}:{v}" for k, v in headers)]
    return "\n".join(lines) + "\n\n" + body + "\0"
