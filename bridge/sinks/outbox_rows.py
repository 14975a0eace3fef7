"""Pure parts of the durable outbox: its table, a delivery as a row and back, its counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from bridge.messages import Delivery, Message
from bridge.sinks.settings import QueueConfig

FILE = "outbox.sqlite3"
SCHEMA = """PRAGMA busy_timeout = 200; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
-- AUTOINCREMENT never reuses an id: "<tag>-<id>" stays unique; frame: see to_row
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,
  topic TEXT, payload BLOB NOT NULL, is_text INTEGER NOT NULL, qos INTEGER, retain INTEGER,
  received_at REAL NOT NULL, frame);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"""
INSERT = ("INSERT INTO outbox (source, topic, payload, is_text, qos, retain, received_at, frame) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
SELECT = ("SELECT id, source, topic, payload, is_text, qos, retain, received_at, frame "
          "FROM outbox WHERE id > ? ORDER BY id LIMIT ?")
OLDEST = "SELECT id, length(payload) FROM outbox WHERE id > ? ORDER BY id LIMIT ?"
Row = tuple[str, str | None, bytes, int, int | None, int | None, float, str | bytes | None]


@dataclass(slots=True)
class StoredDelivery(Delivery):
    """A delivery read back from the outbox: its row, payload bytes and the stable ``msg_id``."""

    row: int = 0
    size: int = 0
    msg_id: str = ""


def to_row(d: Delivery) -> Row:
    """The row of ``d``; the upstream frame is kept only when a payload template changed it."""
    payload, frame = d.payload, d.message.data
    blob = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    return (d.message.source, d.topic, blob, int(isinstance(payload, str)), d.qos,
            None if d.retain is None else int(d.retain), d.message.received_at,
            None if frame is payload else frame)


def from_row(row: tuple[Any, ...], tag: str) -> StoredDelivery:
    """The delivery of one ``SELECT`` row; ``tag`` (unique per outbox file) prefixes msg_id."""
    rid, source, topic, blob, text, qos, retain, at, frame = row
    payload = blob.decode("utf-8", "surrogatepass") if text else blob
    msg = Message(source, payload if frame is None else frame, at)
    return StoredDelivery(msg, payload, topic, qos, None if retain is None else bool(retain),
                          rid, len(blob), f"{tag}-{rid}")


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
