"""Opening the durable outbox's file: created with its schema, checked, a corrupt one salvaged.

SQLite replays the WAL at open (a torn tail is dropped) and ``quick_check`` reads every page. A
file that fails it, or is no database at all, is salvaged: every row that still reads is copied,
in order, with its row id and the file's tag (so each keeps its ``msg_id``), into a new file
beside it; the corrupt file is then moved aside to ``<file>.corrupt-<UTC time>`` and the new one
takes its place. One error line says how many rows were saved, how many lost at most, and where
the corrupt file went.

Rows are read through SQLite itself, skipping what fails to read (``outbox_salvage`` says how
and why not with the sqlite3 CLI's ``.recover``).

Kept apart from ``Outbox`` (the queue over an open file): the MQTT sink opens the file here and
hands the connection over."""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from bridge.errors_sink import SinkUnavailable
from bridge.sinks import outbox_rows as rows
from bridge.sinks.outbox_salvage import Salvage

log = logging.getLogger("bridge.sinks.outbox")
Opened = tuple[sqlite3.Connection, str]  # the connection and the file's tag (msg_id prefix)


def open_outbox(directory: str, sink: str) -> Opened:
    """Open (WAL replay is SQLite's own) the outbox in ``directory``; a corrupt file is salvaged
    into a new one and moved aside. SinkUnavailable when the file cannot be opened or written."""
    path = Path(directory, rows.FILE)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _finish_salvage(path)
        return _connect(path, check=True)
    except (OSError, sqlite3.OperationalError) as exc:  # locked, read-only, unreachable, full
        raise SinkUnavailable(sink, f"cannot open the outbox {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        reason = str(exc)
    try:
        _salvage(path, sink, reason)
        return _connect(path, check=False)
    except (OSError, sqlite3.Error) as exc:  # the corrupt file is left where it was
        raise SinkUnavailable(sink, f"cannot salvage the corrupt outbox {path}: {exc}") from exc


def _connect(path: Path, *, check: bool) -> Opened:
    db = sqlite3.connect(path, isolation_level=None)  # transactions are the outbox's own
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


def _salvage(path: Path, sink: str, reason: str) -> None:
    """Every readable row of the corrupt ``path`` into ``<path>.salvage``, which then replaces
    it; the corrupt file (and its WAL) is moved aside. A crash on the way is finished at the
    next open (``_finish_salvage``): the salvaged file is complete before anything moves."""
    temp = Path(f"{path}.salvage")
    _remove(temp)  # an earlier salvage that did not finish writing
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as corrupt, \
            contextlib.closing(sqlite3.connect(temp, isolation_level=None)) as new:
        corrupt.execute("PRAGMA query_only = 1")
        old_tag = _one(corrupt, "SELECT value FROM meta WHERE key = 'tag'")
        seq = _one(corrupt, "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
        old = Salvage(functools.partial(_read, corrupt), seq if isinstance(seq, int) else None)
        new.executescript(rows.SCHEMA)
        new.execute("BEGIN IMMEDIATE")
        new.executemany(rows.INSERT_ROW, old.rows())
        tag = old_tag or secrets.token_hex(4)  # an unreadable tag: new msg_ids, a new tag
        new.execute("INSERT INTO meta VALUES ('tag', ?)", (tag,))
        new.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
        new.execute("INSERT INTO sqlite_sequence VALUES ('outbox', ?)", (old.next_seq(),))
        new.execute("COMMIT")
    aside = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    for suffix in ("", "-wal", "-shm"):  # the file first: then a crash leaves no file behind
        if (part := Path(f"{path}{suffix}")).exists():
            part.replace(aside + suffix)
    temp.replace(path)
    ids = "their msg_ids kept" if old_tag else "new msg_ids: the old tag was unreadable"
    log.error("sink %r: outbox %s is corrupt (%s): salvaged %d messages in order (%s), lost %s;"
              " the corrupt file is moved aside to %s (kept for inspection)", sink, path, reason,
              old.saved, ids, old.lost_text(), aside)


def _finish_salvage(path: Path) -> None:
    """A salvage that moved the corrupt file aside and then stopped: its new file goes in place
    (a WAL left behind belongs to the corrupt file, and goes aside too)."""
    temp = Path(f"{path}.salvage")
    if temp.exists() and not path.exists():
        stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
        for suffix in ("-wal", "-shm"):
            if (part := Path(f"{path}{suffix}")).exists():
                part.replace(f"{path}.corrupt-{stamp}{suffix}")
        temp.replace(path)


def _read(db: sqlite3.Connection, start: int, most: int) -> list[tuple[Any, ...]] | None:
    """Rows with id >= ``start``, in order, at most ``most``; None when a page fails to read."""
    try:
        return db.execute(rows.SELECT_FROM, (start, most)).fetchall()
    except sqlite3.DatabaseError:
        return None


def _one(db: sqlite3.Connection, sql: str) -> Any:
    """The one value ``sql`` reads, None when it cannot be read."""
    try:
        found = db.execute(sql).fetchall()
    except sqlite3.DatabaseError:
        return None
    return found[0][0] if found else None


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
