"""The bench's message shape: JSON of an exact size carrying a sequence number and a timestamp."""

from __future__ import annotations

import gzip
import random

PRIME_SEQ = -1  # a message that proves the pipeline is up; receivers never count it


def make_payload(seq: int, ts_ns: int, size: int) -> bytes:
    """``{"seq":N,"ts":T,"e":"trade","pad":"xx..."}`` padded to exactly ``size`` bytes.

    ``e`` is there for the routes that filter (``when: {e: trade}``) or template (``{msg.e}``).
    """
    head = f'{{"seq":{seq},"ts":{ts_ns},"e":"trade","pad":"'
    pad = size - len(head) - 2
    if pad < 0:
        raise ValueError(f"payload size {size} is too small for seq {seq}")
    return (head + "x" * pad + '"}').encode()


def make_gzipped(seq: int, ts_ns: int, size: int) -> bytes:
    """A payload of ``size`` bytes, gzip-compressed as HTX or OKX send theirs: the padding is
    random digits, so it compresses about as much as market data does (2-3x), not 50x."""
    plain = bytearray(make_payload(seq, ts_ns, size))
    start = plain.index(b'"pad":"') + 7
    digits = random.Random(seq).choices(b"0123456789", k=len(plain) - start - 2)
    plain[start : start + len(digits)] = bytes(digits)
    return gzip.compress(bytes(plain), compresslevel=6, mtime=0)


def ws_frame(payload: bytes, binary: bool = False) -> bytes:
    """An unmasked server-to-client frame (text, or ``binary``): the blaster writes frames with
    no library cost."""
    n, opcode = len(payload), 0x82 if binary else 0x81
    if n < 126:
        header = bytes((opcode, n))
    elif n < 65536:
        header = bytes((opcode, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((opcode, 127)) + n.to_bytes(8, "big")
    return header + payload


def parse_seq(payload: bytes | memoryview, start: int = 0) -> int:
    """The sequence number of a bench payload that begins at ``start``."""
    end = bytes(payload[start + 7 : start + 28]).index(b",")
    return int(bytes(payload[start + 7 : start + 7 + end]))
