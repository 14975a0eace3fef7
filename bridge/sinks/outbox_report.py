"""``ws-bridge check --state``'s look at an outbox: read-only, safe while the daemon runs.

Kept apart from the outbox itself, which is the running sink's queue: this opens the file
in SQLite's read-only mode, never creating nor changing it, and reports what a user asks
before a restart or an upgrade (how much is waiting, since when, and whether it is sound)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from bridge.sinks import outbox_rows as rows


def describe_outbox(path: str) -> dict[str, Any]:
    """For ``ws-bridge check --state``: depth, age of the oldest row (s), payload bytes and
    SQLite's integrity_check of the outbox in directory ``path``; read-only, safe while running."""
    file = Path(path, rows.FILE)
    out: dict[str, Any] = {"path": str(file), "exists": file.exists(), "depth": 0,
                           "oldest_age": None, "bytes": 0, "integrity": "ok"}
    if out["exists"]:
        try:
            uri = f"{file.resolve().as_uri()}?mode=ro"  # never creates nor changes a file
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                out["depth"], out["bytes"] = db.execute(rows.COUNT).fetchall()[0]
                if oldest := db.execute(rows.SELECT, (0, 1)).fetchall():
                    out["oldest_age"] = round(max(0.0, time.time() - oldest[0][7]), 3)
                out["integrity"] = "; ".join(r[0] for r in db.execute("PRAGMA integrity_check(5)"))
        except sqlite3.Error as exc:
            out["integrity"] = f"unreadable: {exc}"
    return out
