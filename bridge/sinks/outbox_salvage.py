"""Salvaging a corrupt outbox: its readable rows in id order, found around unreadable pages.

Pure: ``read(start, most)`` is the file's range read (the rows with id >= start, in order, at
most ``most``; None when a page on the way fails to read), which ``outbox_file`` runs on SQLite.
A range read walks the table's pages in row order; where one fails, a search over start ids
(doubling, then bisecting) finds the lowest that reads again, so only the rows of unreadable
pages are lost, and the ids skipped bound how many (ids are never reused; acked rows leave
holes, so it is an upper bound).

Why not the sqlite3 CLI's ``.recover``: ARCHITECTURE.md, "Durable outbox"."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

CHUNK = 256  # rows per range read
MAX_ID = 2**63 - 1
JUMP = 2**32  # ids skipped when the old file's sequence cannot be read: no msg_id repeats
Read = Callable[[int, int], "list[tuple[Any, ...]] | None"]


class Salvage:
    """The readable rows of a corrupt outbox, in id order, and what is known of those lost."""

    def __init__(self, read: Read, seq: int | None) -> None:
        """``seq``: the corrupt file's AUTOINCREMENT sequence, None when it cannot be read."""
        self.read, self.seq = read, seq
        self.saved, self.lost, self.last = 0, 0, 0
        self.tail: int | None = None  # the last id read before unreadable rows at the end

    def rows(self) -> Iterator[tuple[Any, ...]]:
        start, gap = 1, None  # gap: the last id read before a failure, until a row reads again
        while True:
            if (chunk := self.read(start, CHUNK)) is not None:
                found, failed = chunk, False
            else:
                found, failed = self._until_failure(start)
            for row in found:
                if gap is not None:  # the ids between were on unreadable pages
                    self.lost, gap = self.lost + row[0] - gap - 1, None
                self.saved, self.last = self.saved + 1, row[0]
                yield row
            start = found[-1][0] + 1 if found else start
            if failed:
                gap = start - 1 if gap is None else gap
                if (after := self._readable_from(start)) is None:
                    self.tail = gap
                    return
                start = after
            elif len(found) < CHUNK:
                self.tail = gap  # rows after it, if any, were unreadable
                return

    def next_seq(self) -> int:
        """The new file's AUTOINCREMENT sequence: never below an id the old file gave."""
        if self.seq is not None:
            return max(self.seq, self.last)
        return self.last + JUMP

    def lost_text(self) -> str:
        if self.tail is None:
            return f"at most {self.lost}"
        if self.seq is not None:
            return f"at most {self.lost + max(0, self.seq - self.tail)}"
        if not self.saved:
            return "an unknown number"
        return f"at least {self.lost}, and an unknown number after id {self.tail}"

    def _until_failure(self, start: int) -> tuple[list[tuple[Any, ...]], bool]:
        """A failed range read again one row at a time: the rows before the failure."""
        found: list[tuple[Any, ...]] = []
        while row := self.read(start, 1):
            found.append(row[0])
            start = row[0][0] + 1
        return found, row is None

    def _readable_from(self, failing: int) -> int | None:
        """The lowest start id above ``failing`` whose range read works again (at the end of
        the ids, an empty read; None when not even that reads). Doubling finds one, bisecting
        the last doubling the lowest: a readable stretch shorter than that doubling, between
        two damaged ones, can be missed."""
        low, step = failing, 1
        while not self._reads(high := min(low + step, MAX_ID)):
            if high == MAX_ID:
                return None  # not even the end reads: nothing more to salvage
            low, step = high, step * 2
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if self._reads(mid) else (mid, high)
        return high

    def _reads(self, start: int) -> bool:
        return self.read(start, 1) is not None
