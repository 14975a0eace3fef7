"""The durable outbox's ledger: what the file holds, counted in memory.

Every question about the outbox's size (``len``, and through ``outbox_bounds`` ``full`` and
whether a put fits) is answered without reading the file; the outbox keeps the ledger in step
with each flush, take, settle and drop.

The rows put and not yet written wait in ``buf``. While the file cannot be written (a full disk)
they stay there, ``spilling``, until a retry writes them; they are not taken before, so that the
order holds (``len`` leaves them out: the sink's pump does not spin on rows it cannot take)."""

from __future__ import annotations

from collections import deque

from bridge.sinks.outbox_rows import Row


class Ledger:
    """What the outbox holds, counted, so that no question about its size reads the file."""

    def __init__(self) -> None:
        self.rows = self.size = 0  # rows in the file, not settled or dropped; their payload bytes
        self.buf: deque[Row] = deque()  # puts not yet written (the spill while spilling)
        self.buffered = self.buffered_size = 0  # len(buf); its payload bytes
        self.spilling = False  # a write failed: buf waits in memory for the retry
        self.excess, self.trim = 0, False  # what drop_oldest has the next flush delete
        self.cursor = 0  # the last row taken (0 at open: every row goes again, in order)
        # taken, unsettled row -> payload bytes; settled or dropped rows the next flush deletes
        self.inflight, self.done = dict[int, int](), list[tuple[int]]()

    def __len__(self) -> int:  # rows waiting to be taken (a spill is not, until written)
        return max(0, self.waiting() - (self.buffered if self.spilling else 0))

    def waiting(self) -> int:
        """Rows not in flight, written or not."""
        return self.rows + self.buffered - self.excess - len(self.inflight)

    def written(self) -> None:
        self.rows, self.size = self.rows + self.buffered, self.size + self.buffered_size
        self.buffered = self.buffered_size = 0

    def held(self, buf: deque[Row], settled: list[tuple[int]], stored: tuple[int, int]) -> None:
        """A write failed and rolled back: its puts ``buf`` go back in front, held in memory
        (spilling), its ``settled`` deletes wait for the next write, and the file holds what
        it held before, ``stored`` (rows, payload bytes), less the deletes still to do."""
        self.done, self.spilling = settled + self.done, True
        self.buf.extendleft(reversed(buf))
        self.buffered, self.buffered_size = len(self.buf), sum(len(r[2]) for r in self.buf)
        self.rows, self.size = stored[0] - len(self.done), stored[1]

    def forget(self, rid: int, size: int) -> None:  # settled, expired or dropped
        self.done.append((rid,))
        self.rows, self.size = self.rows - 1, self.size - size

    def settled(self) -> None:  # only in-flight rows remain (read to the end, or a failure)
        self.excess = 0
        self.rows, self.size, self.trim = len(self.inflight), sum(self.inflight.values()), False
