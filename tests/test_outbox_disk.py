"""The durable outbox on a full filesystem: a small tmpfs the test mounts and fills.

What a user sees today: one error naming the sink and the outbox's path; the rows already in the
file intact and delivered in order; what came while the disk was full dropped and counted
(``outbox_error``), never silently; and writes that work again by themselves once space returns.
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
from tests.test_outbox import delivery, depth, logged, running, sink_config

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


async def test_a_full_disk_is_named_counted_and_outlived_with_the_stored_rows_intact(
    mosquitto: Make, mqtt_subscriber: Subscribe, small_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "bridge.sinks.outbox")
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
        filler.unlink()  # space returns
        for text in after:
            sink.send(delivery(text))
        broker.start()
        await sub.reconnect()
        got = await sub.wait_for(lambda ms: any(m.payload == after[-1].encode() for m in ms),
                                 timeout=15)
        await eventually(depth(small_disk, 0), 10, "the outbox drained")
    assert sink.outbox is not None
    delivered = [m.payload.decode() for m in got]
    kept_during = [t for t in delivered if t in set(during)]
    assert delivered == before + kept_during + after  # intact, in order, each once
    assert len(kept_during) + sink.outbox.dropped["outbox_error"] == BATCH  # none silently
    assert sink.outbox.dropped["outbox_error"] > 0
    assert "database or disk is full" in caplog.text
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
