"""The durable outbox: the MQTT sink's queue kept in SQLite, surviving outages, restarts, kill -9.

The ``SinkQueue`` interface, as ``BoundedQueue``'s, plus ``settle``: a row leaves the file once
the broker acked it, QoS 0 left in a socket write, or it can never be published. ``take`` reads
after a cursor and leaves rows on disk, in flight; ``push_front`` rewinds the cursor, so after a
reconnect or a restart (cursor 0) unsettled rows go again, in order. Memory never holds the
backlog. WAL with synchronous=NORMAL: a commit survives kill -9 without an fsync in the loop
(FULL would add one). Puts commit together FLUSH_DELAY later, at FLUSH_ROWS or before a take:
kill -9 loses at most that tail. SQLite runs inline, not in a thread: every statement is small
and bounded (ARCHITECTURE.md, "Durable outbox", has the measurements)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import time
from pathlib import Path

from bridge.errors_sink import SinkUnavailable
from bridge.messages import Delivery
from bridge.sinks import outbox_rows as rows
from bridge.sinks.outbox_ledger import Ledger
from bridge.sinks.outbox_rows import StoredDelivery
from bridge.sinks.settings import QueueConfig

log = logging.getLogger("bridge.sinks.outbox")
FLUSH_ROWS, FLUSH_DELAY, CHUNK = 1024, 0.005, 256


class Outbox(Ledger):
    """A ``SinkQueue`` on disk; its bounds count every row, in flight or not."""

    def __init__(self, cfg: QueueConfig, sink: str) -> None:
        super().__init__(cfg)
        self.path, self.sink, self.max_age = Path(cfg.path or ".", rows.FILE), sink, cfg.max_age
        self._buf: list[rows.Row] = []
        self._timer: asyncio.TimerHandle | None = None
        self._noted = ""
        self._db, self.tag = _open(self.path, sink)
        self.rows, self.size = self._db.execute(rows.COUNT).fetchall()[0]

    def put(self, d: Delivery) -> bool:
        """Store ``d``; False when the policy dropped one (the oldest or this one), as counted."""
        row = rows.to_row(d)
        if (admitted := self.admit(len(row[2]))) is None:
            return False
        self._buf.append(row)
        self.flush() if len(self._buf) >= FLUSH_ROWS else self._schedule()
        return admitted

    def oldest_age(self) -> float | None:
        """Seconds the oldest stored row has waited (its receive time), None when empty."""
        oldest = self._db.execute(rows.SELECT, (0, 1)).fetchall()
        return max(0.0, time.time() - oldest[0][7]) if oldest else 0.0 if self._buf else None

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

    def flush(self) -> None:
        """Commit buffered puts, settled deletes and drop_oldest's deletes in one transaction."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._buf or self.done or self.excess or self.trim):
            return
        buf, self._buf = self._buf, []
        done: list[tuple[int]] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(rows.INSERT, buf)
            self.written()
            self._drop_oldest()
            done, self.done = self.done, []
            self._db.executemany(rows.DELETE, done)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.rollback()
            self.dropped["outbox_error"] += len(buf)
            self._rolled_back(done)
            self._failed("write", exc)

    def close(self) -> None:
        """Flush and close (the WAL is folded into the file); the rows wait for the next start."""
        self.flush()
        self._db.close()

    def _drop_oldest(self) -> None:
        """Delete the oldest rows not in flight: those counted at put, then bytes over max_bytes."""
        after = self.cursor
        while self.excess > 0 or (self.trim and self.size > self.max_bytes):
            found = self._db.execute(rows.OLDEST, (after, self.excess or CHUNK)).fetchall()
            if not self.excess:  # trimming bytes: only as many rows as it takes
                over, k = self.size - self.max_bytes, 0
                while k < len(found) and over > 0:
                    over, k = over - found[k][1], k + 1
                found = found[:k]
                self.dropped["queue_full_oldest"] += k
            if not found:
                break
            after, self.excess = found[-1][0], max(0, self.excess - len(found))
            for rid, size in found:
                self.forget(rid, size)
        self.excess, self.trim = 0, False

    def _schedule(self) -> None:
        if self._timer is None:
            with contextlib.suppress(RuntimeError):  # no loop: the next take or close flushes
                self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def _rolled_back(self, settled: list[tuple[int]]) -> None:
        """A failed write (a full disk) left the file as it was: count what it holds again, so
        the rows already stored are still taken, and delete the settled ones at the next flush."""
        self.done = settled + self.done
        self.buffered = self.buffered_size = self.excess = 0
        self.trim = False
        with contextlib.suppress(sqlite3.Error):
            self.rows, self.size = self._db.execute(rows.COUNT).fetchall()[0]
        self.rows -= len(self.done)

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        if what == "read":
            self.settled()  # as if nothing waits (no spinning pump); the next put's take reads on
        if str(exc) != self._noted:  # once per distinct failure, not once per flush
            self._noted = str(exc)
            log.error("sink %r: cannot %s the outbox %s: %s", self.sink, what, self.path, exc)


def _open(path: Path, sink: str) -> tuple[sqlite3.Connection, str]:
    """Open (WAL replay is SQLite's own); a corrupt file is moved aside and replaced."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _connect(path, check=True)
    except (OSError, sqlite3.OperationalError) as exc:  # locked, read-only, unreachable, full
        raise SinkUnavailable(sink, f"cannot open the outbox {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        aside = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        for suffix in ("", "-wal", "-shm"):
            if (part := Path(f"{path}{suffix}")).exists():
                part.replace(aside + suffix)
        log.error("sink %r: outbox %s is corrupt (%s): moved aside to %s (`sqlite3 FILE "
                  ".recover` salvages what is readable); starting a fresh outbox", sink, path,
                  exc, aside)
        return _connect(path, check=False)


def _connect(path: Path, *, check: bool) -> tuple[sqlite3.Connection, str]:
    db = sqlite3.connect(path, isolation_level=None)  # transactions are ours: see flush()
    try:
        db.executescript(rows.SCHEMA)
        if check and (result := db.execute("PRAGMA quick_check").fetchall()) != [("ok",)]:
            raise sqlite3.DatabaseError(f"quick_check: {result[0][0]}")
        # A fresh file's own tag: its msg_ids never repeat those of a file moved aside.
        db.execute("INSERT OR IGNORE INTO meta VALUES ('tag', ?)", (secrets.token_hex(4),))
        return db, str(db.execute("SELECT value FROM meta WHERE key = 'tag'").fetchall()[0][0])
    except BaseException:
        db.close()
        raise
