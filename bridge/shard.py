"""Which shard owns a source: rendezvous hashing by source name, stable across processes."""

from __future__ import annotations

import hashlib
import re

_SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N) with 0 <= K < N."""
    match = _SHARD.match(text.strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"not a shard: {text!r} (write K/N with 0 <= K < N, e.g. 0/4)")
    return int(match.group(1)), int(match.group(2))


def owner(source: str, shards: int) -> int:
    """The shard that owns ``source``; adding a shard moves only about 1/N of the sources."""

    def weight(shard: int) -> bytes:
        return hashlib.blake2b(f"{shard}:{source}".encode(), digest_size=8).digest()

    return max(range(shards), key=weight)
