"""A corrupt outbox is salvaged: its readable rows, in order and with their msg_ids, go into a
fresh file before the corrupt one is moved aside.

The files are real: an outbox the code wrote, then pages in its middle overwritten with noise;
the oracle is a real MQTT 5 subscriber receiving what the sink then publishes."""

from __future__ import annotations

import contextlib
import logging
import random
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.sinks.mqtt import MqttSink
from bridge.sinks.outbox_file import open_outbox
from bridge.sinks.outbox_rows import FILE
from bridge.sinks.outbox_salvage import JUMP, Salvage
from tests.support.mosquitto import Broker, Subscriber
from tests.test_outbox import delivery, drain, msg_id, outbox, payloads, running, sink_config

pytestmark = pytest.mark.mqtt
Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]
SALVAGED = re.compile(r"salvaged (\d+) messages in order \(their msg_ids kept\), lost at most "
                      r"(\d+); the corrupt file is moved aside to (\S+) ")


def written(tmp_path: Path, total: int) -> dict[str, str]:
    """An outbox of ``total`` rows written by the code, closed; payload -> its msg_id."""
    box = outbox(tmp_path)
    for i in range(total):
        box.put(delivery(f"{i:05d} " + "x" * 100))
    box.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "ob" / FILE)) as db:
        tag = db.execute("SELECT value FROM meta WHERE key = 'tag'").fetchall()[0][0]
        return {p.decode(): f"{tag}-{rid}" for rid, p in db.execute("SELECT id, payload FROM "
                                                                    "outbox ORDER BY id")}


def damage(file: Path, pages: list[int], page: int = 4096) -> None:
    """Overwrite whole pages (numbered from 0) with noise, as a bad disk or a stray write would."""
    noise = random.Random(19)
    with file.open("r+b") as f:
        for p in pages:
            f.seek(p * page)
            f.write(noise.randbytes(page))


async def test_a_corrupt_outbox_is_salvaged_and_published_in_order_with_its_msg_ids(
    mosquitto: Make, mqtt_subscriber: Subscribe, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    total = 3000
    ids = written(tmp_path, total)
    file = tmp_path / "ob" / FILE
    pages = file.stat().st_size // 4096
    damage(file, [pages // 3, pages // 2, pages // 2 + 1])  # leaves of the table, mid-file
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#")
    with caplog.at_level(logging.ERROR, "bridge.sinks.outbox"):
        sink = MqttSink(sink_config(broker, tmp_path))
    (line,) = [r.getMessage() for r in caplog.records if "is corrupt" in r.getMessage()]
    assert line.startswith(f"sink 'broker': outbox {file} is corrupt (")
    found = SALVAGED.search(line)
    assert found is not None, line
    saved, lost, aside = int(found[1]), int(found[2]), Path(found[3])
    async with running(sink):
        got = await sub.wait_for(saved, timeout=20)
        sink.send(delivery("after"))
        after = await sub.wait_for(saved + 1, timeout=5)
    texts = [m.payload.decode() for m in got[:saved]]
    assert texts == sorted(texts) and len(set(texts)) == saved  # in order, each once
    assert all(ids[m.payload.decode()] == msg_id(m) for m in got[:saved])  # the same msg_ids
    assert 0 < total - saved == lost <= 3 * 40  # ids without holes: the bound is exact
    tag, last = msg_id(got[0]).split("-")[0], int(ids[texts[-1]].split("-")[1])
    assert last == total  # the old file's last row was readable: the sequence goes on from it
    assert msg_id(after[-1]) == f"{tag}-{total + 1}"  # new rows never reuse an old msg_id
    assert aside.exists() and aside.name.startswith(f"{FILE}.corrupt-")


def test_a_file_that_is_no_database_at_all_is_moved_aside_with_nothing_salvaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    written(tmp_path, 10)
    (tmp_path / "ob" / FILE).write_bytes(b"this is not an SQLite database" * 100)
    with caplog.at_level(logging.ERROR, "bridge.sinks.outbox"):
        fresh = outbox(tmp_path)
    assert "salvaged 0 messages" in caplog.text and "new msg_ids" in caplog.text
    assert "lost an unknown number;" in caplog.text
    aside = list((tmp_path / "ob").glob(f"{FILE}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    fresh.put(delivery("new"))
    assert payloads(drain(fresh)) == ["new"]
    fresh.close()


def test_a_salvage_stopped_after_moving_the_corrupt_file_aside_is_finished_at_the_next_open(
    tmp_path: Path,
) -> None:
    ids = written(tmp_path, 5)
    file = tmp_path / "ob" / FILE
    file.replace(f"{file}.salvage")  # the salvaged file, complete; the corrupt one moved aside
    db, tag = open_outbox(str(tmp_path / "ob"), "broker")
    assert [r[0].decode() for r in db.execute("SELECT payload FROM outbox")] == list(ids)
    assert all(v.startswith(f"{tag}-") for v in ids.values())
    assert not Path(f"{file}.salvage").exists()
    db.close()


def reader(readable: dict[int, bool]) -> Callable[[int, int], list[tuple[Any, ...]] | None]:
    """A range read over ids -> readable: None once it meets an unreadable one (a bad page)."""

    def read(start: int, most: int) -> list[tuple[Any, ...]] | None:
        out: list[tuple[Any, ...]] = []
        for rid in sorted(r for r in readable if r >= start):
            if len(out) == most:
                break
            if not readable[rid]:
                return None
            out.append((rid,))
        return out

    return read


def test_the_search_skips_each_damaged_stretch_and_bounds_what_was_lost() -> None:
    ids = {rid: not (300 <= rid < 340 or 1000 <= rid < 1010) for rid in range(1, 1500)}
    ids |= {rid: False for rid in range(1500, 1520)}  # the last rows unreadable too
    salvage = Salvage(reader(ids), seq=1519)
    got = [r[0] for r in salvage.rows()]
    assert got == [rid for rid, ok in ids.items() if ok]
    assert (salvage.saved, salvage.lost_text()) == (len(got), f"at most {40 + 10 + 20}")
    assert salvage.next_seq() == 1519
    unknown = Salvage(reader(ids), seq=None)
    list(unknown.rows())
    assert unknown.lost_text() == "at least 50, and an unknown number after id 1499"
    assert unknown.next_seq() == 1499 + JUMP
