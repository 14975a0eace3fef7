"""The durable outbox on a full filesystem: a small tmpfs the test mounts and fills.

What a user sees: one error naming the sink and the outbox's path; the rows already in the file
intact; what comes while the disk is full held in memory, within the queue's bounds and under its
overflow policy, and written in order by the retry once space returns; so every message accepted
is delivered, in order, each once.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bridge.sinks.mqtt import MqttSink
from tests.support.daemon import eventually
from tests.support.mosquitto import Broker, Subscriber
from tests.test_outbox import (
    delivery,
    depth,
    drain,
    logged,
    outbox,
    payloads,
    running,
    sink_config,
)

Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]
BATCH, BODY = 200, "x" * 1000  # 200 KB a batch, on a 4 MiB disk the test fills


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test (root); unmounted at teardown."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs for the full-disk test (needs root): "
                    f"{done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Writes a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):  # ENOSPC ends it
        while True:
            out.write(b"\0" * 4096)
    return filler


def batch(first: int) -> list[str]:
    return [f"{n}:{BODY}" for n in range(first, first + BATCH)]


async def test_a_full_disk_is_named_and_outlived_with_every_accepted_message_delivered(
    mosquitto: Make, mqtt_subscriber: Subscribe, small_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "bridge.sinks.outbox")
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#", persistent=True)
    await sub.close()
    broker.stop()  # down: everything waits in the outbox
    sink = MqttSink(sink_config(broker, small_disk))
    before, during, after = batch(0), batch(BATCH), batch(2 * BATCH)
    async with running(sink):
        for text in before:
            sink.send(delivery(text))
        await eventually(depth(small_disk, BATCH), 5, f"{BATCH} rows in the outbox")
        filler = fill(small_disk)
        for text in during:
            sink.send(delivery(text))
        path = small_disk / "ob" / "outbox.sqlite3"
        await eventually(logged(caplog, f"sink 'broker': cannot write the outbox {path}"), 5,
                         "the error naming the sink and the path")
        assert sink.snapshot().queue_depth == 2 * BATCH  # the depth shown counts those held
        filler.unlink()  # space returns
        for text in after:
            sink.send(delivery(text))
        await eventually(logged(caplog, "is written again"), 10, "the retry writing the spill")
        await eventually(depth(small_disk, 3 * BATCH), 5, "all of them on disk")
        broker.start()
        await sub.reconnect()
        got = await sub.wait_for(3 * BATCH, timeout=15)
        await eventually(depth(small_disk, 0), 10, "the outbox drained")
    assert sink.outbox is not None
    assert [m.payload.decode() for m in got] == before + during + after  # in order, each once
    assert "database or disk is full" in caplog.text
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
    assert sink.outbox.dropped == {}


def test_while_the_disk_is_full_the_queue_bounds_count_what_is_held_in_memory(
    small_disk: Path,
) -> None:
    """``drop_oldest`` drops the oldest held in memory (the file cannot delete without writing);
    ``drop_newest`` and ``block`` refuse, and ``full`` is what makes ``block``'s sources wait."""
    box = outbox(small_disk, max_messages=BATCH + 50, overflow="drop_oldest")
    newest = outbox(small_disk / "n", max_messages=BATCH + 50, overflow="block")
    for text in batch(0):
        box.put(delivery(text))
        newest.put(delivery(text))
    box.flush()
    newest.flush()
    filler = fill(small_disk)
    held, refused = [], []
    for n, text in enumerate(batch(BATCH)[:100]):
        held.append(box.put(delivery(text)))
        refused.append(newest.put(delivery(text)))
        if n == 10:  # the timer's flush, were a loop running: it fails, the rest is held
            box.flush()
            newest.flush()
    assert box.spilling and newest.spilling and box.full and newest.full
    assert held == [True] * 50 + [False] * 50 and refused == [True] * 50 + [False] * 50
    assert box.dropped == {"queue_full_oldest": 50}
    assert newest.dropped == {"queue_full_newest": 50}
    filler.unlink()
    box.flush(retry=True)
    assert not box.spilling
    assert payloads(drain(box)) == batch(0) + batch(BATCH)[50:100]
    newest.close()
    box.close()


async def test_a_sink_rebuilt_by_a_reload_while_the_disk_is_full_takes_over_what_is_held(
    small_disk: Path, mosquitto: Make,
) -> None:
    """The old sink's puts held in memory go to its successor on the same file (the supervisor's
    ``_hand_over``), after the rows already stored; nothing is lost when the old one closes."""
    broker = mosquitto(start=False)  # down: the rows stay in the file, which is the oracle
    old = MqttSink(sink_config(broker, small_disk))
    for text in batch(0):
        old.send(delivery(text))
    assert old.outbox is not None
    old.outbox.flush()
    filler = fill(small_disk)
    for text in batch(BATCH):
        old.send(delivery(text))
    old.outbox.flush()  # fails: held
    assert old.outbox.spilling
    new = MqttSink(sink_config(broker, small_disk))
    for d in old.hand_over():
        new.send(d)
    old.outbox.close()
    assert old.outbox.dropped == {}
    filler.unlink()
    assert new.outbox is not None
    new.outbox.flush(retry=True)
    assert payloads(drain(new.outbox)) == batch(0) + batch(BATCH)
    new.outbox.close()
