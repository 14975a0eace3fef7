"""Pure parts of the durable outbox: its table and statements, a delivery as a row and back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.messages import Delivery, Message

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
SELECT_FROM = ("SELECT id, source, topic, payload, is_text, qos, retain, received_at, frame "
               "FROM outbox WHERE id >= ? ORDER BY id LIMIT ?")  # salvage: a range read
INSERT_ROW = ("INSERT INTO outbox (id, source, topic, payload, is_text, qos, retain, received_at,"
              " frame) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")  # salvage: a row kept with its id
OLDEST = "SELECT id, length(payload) FROM outbox WHERE id > ? ORDER BY id LIMIT ?"
DELETE = "DELETE FROM outbox WHERE id = ?"
COUNT = "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox"
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
