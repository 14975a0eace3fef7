"""The durable outbox's ledger: what the file holds, counted in memory, and its bounds.

Every question about the outbox's size (``len``, ``full``, whether a put fits) is answered
here without reading the file; the outbox keeps the ledger in step with each flush, take,
settle and drop, and the ledger tells it which rows ``drop_oldest`` must delete."""

from __future__ import annotations

from collections import Counter

from bridge.sinks.settings import QueueConfig


class Ledger:
    """What the outbox holds, counted, so that no question about its size reads the file."""

    def __init__(self, cfg: QueueConfig) -> None:
        self.limit, self.overflow, self.max_bytes = cfg.max_messages, cfg.overflow, cfg.max_bytes
        self.dropped: Counter[str] = Counter()
        self.rows = self.size = 0  # rows in the file, not settled or dropped; their payload bytes
        self.buffered = self.buffered_size = 0  # puts not yet written; their payload bytes
        self.excess, self.trim = 0, False  # what drop_oldest has the next flush delete
        self.cursor = 0  # the last row taken (0 at open: every row goes again, in order)
        # taken, unsettled row -> payload bytes; settled or dropped rows the next flush deletes
        self.inflight, self.done = dict[int, int](), list[tuple[int]]()

    def __len__(self) -> int:  # rows waiting to be taken
        return max(0, self.rows + self.buffered - self.excess - len(self.inflight))

    @property
    def full(self) -> bool:
        over = self.max_bytes and self.size + self.buffered_size >= self.max_bytes
        return bool(over) or self.rows + self.buffered - self.excess >= self.limit

    def admit(self, size: int) -> bool | None:
        """True: taken; False: taken, the oldest goes (bytes: counted at flush); None: refused."""
        over_bytes = bool(self.max_bytes) and self.size + self.buffered_size + size > self.max_bytes
        over_count = self.rows + self.buffered - self.excess >= self.limit
        if over_count or over_bytes:
            if self.overflow != "drop_oldest" or not len(self) or size > (self.max_bytes or size):
                self.dropped["queue_full_newest"] += 1
                return None
            self.excess += over_count
            self.dropped["queue_full_oldest"] += over_count
            self.trim = self.trim or over_bytes
        self.buffered, self.buffered_size = self.buffered + 1, self.buffered_size + size
        return not (over_count or over_bytes)

    def written(self) -> None:
        self.rows, self.size = self.rows + self.buffered, self.size + self.buffered_size
        self.buffered = self.buffered_size = 0

    def forget(self, rid: int, size: int) -> None:  # settled, expired or dropped
        self.done.append((rid,))
        self.rows, self.size = self.rows - 1, self.size - size

    def settled(self) -> None:  # only in-flight rows remain (read to the end, or a failure)
        self.buffered = self.buffered_size = self.excess = 0
        self.rows, self.size, self.trim = len(self.inflight), sum(self.inflight.values()), False
