"""The bench's message shape: JSON of an exact size carrying a sequence number and a timestamp."""

from __future__ import annotations

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


def make_each_payload(seq: int, ts_ns: int, size: int, each: int) -> bytes:
    """A bench payload that also carries a list ``l`` of ``each`` elements, each with a sequence
    number of its own (``seq * each + k``, or the prime's -1), for a route with ``each``."""
    items = ",".join(f'{{"seq":{PRIME_SEQ if seq == PRIME_SEQ else seq * each + k},"i":{k}}}'
                     for k in range(each))
    head = f'{{"seq":{seq},"ts":{ts_ns},"e":"trade","l":[{items}],"pad":"'
    pad = size - len(head) - 2
    if pad < 0:
        raise ValueError(f"payload size {size} is too small for {each} elements")
    return (head + "x" * pad + '"}').encode()


def ws_frame(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame: the blaster writes frames with no library cost."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def parse_seq(payload: bytes | memoryview, start: int = 0) -> int:
    """The sequence number of a bench payload that begins at ``start``."""
    end = bytes(payload[start + 7 : start + 28]).index(b",")
    return int(bytes(payload[start + 7 : start + 7 + end]))
