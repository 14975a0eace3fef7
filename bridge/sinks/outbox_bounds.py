"""The durable outbox's bounds: ``max_messages``, ``max_bytes`` and the overflow policy, over
its ledger's counts.

A put is admitted, admitted with the oldest row to go (``drop_oldest``: the next flush deletes
the rows this names), or refused. While the file cannot be written (``spilling``), the rows held
in memory count against the bounds like the others, and ``drop_oldest`` drops the oldest of
them: the rows in the file cannot be deleted without writing. ``block`` makes the sources wait
on ``full`` either way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from bridge.sinks.outbox_ledger import Ledger
from bridge.sinks.outbox_rows import Row
from bridge.sinks.settings import QueueConfig

CHUNK = 256  # rows read at a time when trimming to max_bytes


class Bounds(Ledger):
    """The ledger with the queue's bounds and policy; drops are counted by reason."""

    def __init__(self, cfg: QueueConfig) -> None:
        super().__init__()
        self.limit, self.overflow, self.max_bytes = cfg.max_messages, cfg.overflow, cfg.max_bytes
        self.dropped: Counter[str] = Counter()

    @property
    def full(self) -> bool:
        over = self.max_bytes and self.size + self.buffered_size >= self.max_bytes
        return bool(over) or self.rows + self.buffered - self.excess >= self.limit

    def admit(self, row: Row) -> bool | None:
        """True: taken; False: taken, the oldest goes (bytes: counted at flush); None: refused."""
        size = len(row[2])
        over_bytes = bool(self.max_bytes) and self.size + self.buffered_size + size > self.max_bytes
        over_count = self.rows + self.buffered - self.excess >= self.limit
        if over_count or over_bytes:
            too_big = size > (self.max_bytes or size)  # larger than the whole bound
            if self.overflow != "drop_oldest" or self.waiting() <= 0 or too_big:
                self.dropped["queue_full_newest"] += 1
                return None
            self.excess += over_count
            self.dropped["queue_full_oldest"] += over_count
            self.trim = self.trim or over_bytes
        self.buf.append(row)
        self.buffered, self.buffered_size = self.buffered + 1, self.buffered_size + size
        if self.spilling:
            self.shed()
        return not (over_count or over_bytes)

    def shed(self) -> None:
        """While spilling, what ``drop_oldest`` owes is dropped from the front of ``buf``."""
        over_bytes = self.trim and self.size + self.buffered_size > self.max_bytes
        while self.buf and (self.excess or over_bytes):
            size = len(self.buf.popleft()[2])
            self.buffered, self.buffered_size = self.buffered - 1, self.buffered_size - size
            if self.excess:
                self.excess -= 1  # counted at the put
            else:
                self.dropped["queue_full_oldest"] += 1
            over_bytes = self.trim and self.size + self.buffered_size > self.max_bytes

    def drop_oldest(self, oldest: Callable[[int, int], list[tuple[int, int]]]) -> None:
        """Forget the oldest rows not in flight, for the flush to delete: those counted at puts,
        then as many as bring the bytes under max_bytes. ``oldest(after, n)``: the file's first
        ``n`` rows with an id above ``after``, as (id, payload bytes)."""
        after = self.cursor
        while self.excess > 0 or (self.trim and self.size > self.max_bytes):
            if not (found := self._to_drop(oldest(after, self.excess or CHUNK))):
                break
            after, self.excess = found[-1][0], max(0, self.excess - len(found))
            for rid, size in found:
                self.forget(rid, size)
        self.excess, self.trim = 0, False

    def _to_drop(self, oldest: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Of the oldest rows not in flight (id, payload bytes), those ``drop_oldest`` deletes
        now: all of them for the rows counted at puts, else as many as bring the payload bytes
        under ``max_bytes`` (counted here)."""
        if self.excess:
            return oldest
        over, k = self.size - self.max_bytes, 0
        while k < len(oldest) and over > 0:
            over, k = over - oldest[k][1], k + 1
        self.dropped["queue_full_oldest"] += k
        return oldest[:k]
