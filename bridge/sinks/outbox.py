"""The durable outbox: the MQTT sink's queue kept in SQLite, surviving outages, restarts, kill -9.

The ``SinkQueue`` interface, as ``BoundedQueue``'s, plus ``settle``: a row leaves the file once
the broker acked it, QoS 0 left in a socket write, or it can never be published. ``take`` reads
after a cursor and leaves rows on disk, in flight; ``push_front`` rewinds the cursor, so after a
reconnect or a restart (cursor 0) unsettled rows go again, in order. Memory never holds the
backlog. WAL with synchronous=NORMAL: a commit survives kill -9 without an fsync in the loop
(FULL would add one). Puts commit together FLUSH_DELAY later, at FLUSH_ROWS or before a take:
kill -9 loses at most that tail. SQLite runs inline, not in a thread: every statement is small
and bounded (ARCHITECTURE.md, "Durable outbox", has the measurements).

A write that fails (a full disk) leaves the file as it was and its puts held in memory, within
the queue's bounds (``outbox_bounds``), retried every RETRY seconds and written in order once it
works. The file is opened (and a corrupt one salvaged) by ``outbox_file``, by the sink."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from bridge.messages import Delivery
from bridge.sinks import outbox_rows as rows
from bridge.sinks.outbox_bounds import Bounds
from bridge.sinks.outbox_rows import StoredDelivery
from bridge.sinks.settings import QueueConfig

log = logging.getLogger("bridge.sinks.outbox")
FLUSH_ROWS, FLUSH_DELAY = 1024, 0.005
RETRY = 1.0  # seconds between writes tried while the file cannot be written


class Outbox(Bounds):
    """A ``SinkQueue`` on disk; its bounds count every row, in flight or not."""

    def __init__(self, cfg: QueueConfig, sink: str, opened: tuple[sqlite3.Connection, str]
                 ) -> None:
        """``opened``: the file and its tag, from ``outbox_file.open_outbox(cfg.path, sink)``."""
        super().__init__(cfg)
        self.path, self.sink, self.max_age = Path(cfg.path or ".", rows.FILE), sink, cfg.max_age
        self._timer: asyncio.TimerHandle | None = None
        self._noted = ""
        self._db, self.tag = opened
        self.rows, self.size = self._db.execute(rows.COUNT).fetchall()[0]
        self.on_written: Callable[[], None] = _nothing  # a spill written: the sink's pump wakes

    def put(self, d: Delivery) -> bool:
        """Store ``d``; False when the policy dropped one (the oldest or this one), as counted."""
        if (admitted := self.admit(rows.to_row(d))) is None:
            return False
        self.flush() if len(self.buf) >= FLUSH_ROWS else self._schedule()
        return admitted

    def oldest_age(self) -> float | None:
        """Seconds the oldest row has waited (its receive time), None when empty."""
        oldest = self._db.execute(rows.SELECT, (0, 1)).fetchall()
        at = oldest[0][7] if oldest else self.buf[0][6] if self.buf else None
        return None if at is None else max(0.0, time.time() - at)

    def take(self, most: int) -> list[Delivery]:
        """Up to ``most`` rows after the cursor, oldest first; expired ones are dropped here."""
        self.flush()
        out: list[Delivery] = []
        cutoff = time.time() - self.max_age if self.max_age else None
        try:
            while len(out) < most:
                want = most - len(out)
                found = self._db.execute(rows.SELECT, (self.cursor, want)).fetchall()
                for row in found:
                    d = rows.from_row(row, self.tag)
                    self.cursor = d.row
                    if cutoff is not None and d.message.received_at < cutoff:
                        self.dropped["expired"] += 1
                        self.forget(d.row, d.size)
                    else:
                        self.inflight[d.row] = d.size
                        out.append(d)
                if len(found) < want:  # the end: only in-flight rows remain (heals any drift)
                    self.settled()
                    break
        except sqlite3.Error as exc:
            self._failed("read", exc)
        return out

    def settle(self, d: Delivery) -> None:
        """``d`` needs no resending: the broker has it, QoS 0 went out, or it never can."""
        if isinstance(d, StoredDelivery) and (size := self.inflight.pop(d.row, -1)) >= 0:
            self.forget(d.row, size)
            self._schedule()

    def push_front(self, items: list[Delivery]) -> None:
        """Taken but not delivered: they are read again, first and in order."""
        self.flush()  # drops that drop_oldest counted while they were in flight spare them
        for d in items:
            if isinstance(d, StoredDelivery) and self.inflight.pop(d.row, None) is not None:
                self.cursor = min(self.cursor, d.row - 1)

    def flush(self, retry: bool = False) -> None:
        """Commit buffered puts, settled deletes and drop_oldest's deletes in one transaction;
        while spilling, only the retry (``retry``: its timer, or closing) writes."""
        if self.spilling and not retry:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self.buf or self.done or self.excess or self.trim):
            return
        buf, self.buf = self.buf, deque()
        done: list[tuple[int]] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(rows.INSERT, buf)
            self.written()
            self.drop_oldest(lambda after, n: self._db.execute(rows.OLDEST, (after, n)).fetchall())
            done, self.done = self.done, []
            self._db.executemany(rows.DELETE, done)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.rollback()
            self._rolled_back(buf, done)
            self._failed("write", exc)
            return
        if self.spilling:
            self.spilling, self._noted = False, ""
            log.warning("sink %r: the outbox %s is written again; the %d messages held in memory"
                        " are stored", self.sink, self.path, len(buf))
            self.on_written()

    def hand_over(self) -> list[Delivery]:
        """The puts not yet written, taken (held in memory by a full disk, or waiting for the
        next flush): a successor on the same file stores them after the rows already there."""
        buf, self.buf = self.buf, deque()
        self.buffered = self.buffered_size = 0
        return [rows.from_row((0, *row), self.tag) for row in buf]  # no row id yet

    def close(self) -> None:
        """Flush and close (the WAL is folded into the file); the rows wait for the next start.
        What a full disk still keeps in memory is lost, and said so."""
        self.flush(retry=True)
        if self.spilling and self.buf:
            self.dropped["outbox_error"] += len(self.buf)
            log.error("sink %r: %d messages held in memory are lost: the outbox %s still cannot "
                      "be written", self.sink, len(self.buf), self.path)
        if self._timer is not None:
            self._timer.cancel()
        self._db.close()

    def _schedule(self) -> None:
        if self._timer is None:
            with contextlib.suppress(RuntimeError):  # no loop: the next take or close flushes
                self._timer = asyncio.get_running_loop().call_later(
                    RETRY if self.spilling else FLUSH_DELAY, self._due)

    def _due(self) -> None:
        self._timer = None
        self.flush(retry=True)

    def _rolled_back(self, buf: deque[rows.Row], settled: list[tuple[int]]) -> None:
        """A failed write (a full disk) left the file as it was: its puts are held in memory,
        retried later; the rows it holds, counted again, are still taken."""
        stored = self.rows, self.size
        with contextlib.suppress(sqlite3.Error):
            stored = self._db.execute(rows.COUNT).fetchall()[0]
        self.held(buf, settled, stored)
        self.shed()
        self._schedule()

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        if what == "read":
            self.settled()  # as if nothing waits (no spinning pump); the next put's take reads on
        if str(exc) != self._noted:  # once per distinct failure, not once per flush
            self._noted = str(exc)
            held = (f"; what arrives is held in memory (within the queue's bounds) and the write"
                    f" retried every {RETRY:g}s") if what == "write" else ""
            log.error("sink %r: cannot %s the outbox %s: %s%s", self.sink, what, self.path, exc,
                      held)


def _nothing() -> None:
    """No sink listening for a written spill."""

