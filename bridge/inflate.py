"""Binary frames read as text: UTF-8 as they are, or decompressed first (gzip, zlib, raw
deflate, or whichever of them a frame's header says: ``auto``), never beyond a size bound."""

from __future__ import annotations

import zlib
from typing import Final, Literal

Binary = Literal["bytes", "text", "gzip", "zlib", "deflate", "auto"]

# zlib's window bits: 31 a gzip header, 15 a zlib header, -15 none (raw deflate).
_WBITS: Final = {"gzip": 31, "zlib": 15, "deflate": -15}
_GZIP: Final = b"\x1f\x8b"


class Undecodable(ValueError):
    """A frame that cannot be decoded; ``reason`` names the step (gzip, utf8, protobuf, ...),
    ``part`` is the piece of a split frame that failed (None: the whole frame)."""

    def __init__(self, reason: str, detail: str, part: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.part = reason, detail, part


def inflate(data: bytes, kind: str, limit: int) -> bytes:
    """``data`` decompressed as ``kind`` (gzip, zlib, deflate), at most ``limit`` bytes out:
    a frame that would expand beyond it is refused, as a bigger frame would be."""
    wbits = _WBITS[kind]
    try:
        if len(data) * 1032 <= limit:  # deflate expands at most 1032:1: one call, no bound
            return zlib.decompress(data, wbits)
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(data, limit)
        if inflater.unconsumed_tail:
            raise Undecodable(kind, f"larger than max_message_size ({limit} bytes) once inflated")
        if not inflater.eof:
            raise Undecodable(kind, "the compressed stream is cut short")
    except zlib.error as exc:
        raise Undecodable(kind, str(exc)) from None
    return out


def sniff(data: bytes) -> str | None:
    """What ``auto`` reads a frame as: gzip or zlib by their header, else None (UTF-8 text
    when it is, raw deflate when not)."""
    if data[:2] == _GZIP:
        return "gzip"
    if len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        return "zlib"
    return None


def utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Undecodable("utf8", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def unpack(data: bytes, binary: Binary, limit: int) -> bytes:
    """The bytes a binary frame stands for under ``binary`` (decompressed, or as they are)."""
    if binary in _WBITS:
        return inflate(data, binary, limit)
    if binary == "auto":
        kind = sniff(data)
        if kind is not None:
            return inflate(data, kind, limit)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return inflate(data, "deflate", limit)
    return data
