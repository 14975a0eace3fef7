"""What one socket read from the broker holds: the answers to our publishes picked out whole.

At QoS 1 every publish comes back as a PUBACK, and against a broker's Receive Maximum the next
publishes wait for them. gmqtt hands each packet of a read to its handler one by one (a
``Package``, a handler lookup, a debug line, the store's removal); the adapter (``mqtt_client``)
walks the read with ``walk`` instead, so a read's run of PUBACKs reaches the sink as one list and
the publishes it makes room for leave in one write. Every other packet still goes to gmqtt, and
the order of the read is kept: the PUBACKs before a packet are handed over before it.
Pure: bytes in, calls out."""

from __future__ import annotations

from collections.abc import Callable

PUBACK = 0x40  # its fixed header's first byte: type 4, no flags
Answer = tuple[int, int]  # (packet id, reason code); 0x80 and above is a refusal
MAX_LENGTH_BYTES = 4  # MQTT's variable byte integer


def walk(data: bytes, acks: Callable[[list[Answer]], None],
         other: Callable[[int, bytes], None]) -> int:
    """Hand the whole packets at the start of ``data`` on, in order: each run of PUBACKs to
    ``acks`` as one list, any other packet to ``other(first byte, body)``. Returns the bytes
    walked (a packet cut short stays for the next read), or -1 when a length is malformed."""
    run: list[Answer] = []
    pos, end = 0, len(data)
    while end - pos >= 2:
        if (size := data[pos + 1]) < 0x80:  # a length of one byte: every answer's
            at = pos + 2
        elif (length := _length(data, pos + 1)) is None:
            break  # the length itself is cut short
        elif (at := length[1]) < 0:
            return -1
        else:
            size = length[0]
        if at + size > end:
            break
        first = data[pos]
        if first == PUBACK and size >= 2:  # MQTT 5 may add a reason code (success if absent)
            run.append((data[at] << 8 | data[at + 1], data[at + 2] if size > 2 else 0))
        else:
            if run:
                acks(run)
                run = []
            other(first, data[at:at + size])
        pos = at + size
    if run:
        acks(run)
    return pos


def _length(data: bytes, at: int) -> tuple[int, int] | None:
    """The remaining length starting at ``at`` and where the body starts (-1: malformed), or
    None when the read ends inside it."""
    size, shift, start = 0, 0, at
    while at < len(data):
        if at - start >= MAX_LENGTH_BYTES:
            return 0, -1
        byte = data[at]
        size |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return size, at
        shift += 7
    return None
