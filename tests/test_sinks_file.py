"""The file sink as a user sees it: exact lines, per-source paths, rotation, errors that heal."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.messages import Delivery, Message
from bridge.routing.template import Template
from bridge.sinks.file import FileSink
from bridge.sinks.settings import FileSinkConfig, QueueConfig

T = 1795784400.123  # 2026-11-27T13:00:00.123Z
HOUR = 3600.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def config(path: Path | str, **kw: Any) -> FileSinkConfig:
    return FileSinkConfig(name="archive", path=Template(str(path)), **kw)


def delivery(data: str | bytes, source: str = "s", topic: str | None = None) -> Delivery:
    return Delivery(Message(source, data, T), data, topic)


@contextlib.asynccontextmanager
async def running(sink: FileSink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sink.run())
    try:
        yield task
    finally:
        sink.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


async def test_envelope_lines_are_exact_json_with_topic_and_parsed_payload(tmp_path: Path) -> None:
    sink = FileSink(config(tmp_path / "{source}.jsonl"))
    sink.send(delivery('{"a": 1, "b": [true, null]}', topic="feeds/s"))
    sink.send(delivery("not json"))
    sink.send(delivery('{"bad": NaN}'))
    async with running(sink):
        pass
    assert (tmp_path / "s.jsonl").read_text() == (
        '{"received_at":"2026-11-27T13:00:00.123Z","source":"s","topic":"feeds/s",'
        '"payload":{"a":1,"b":[true,null]}}\n'
        '{"received_at":"2026-11-27T13:00:00.123Z","source":"s","payload":"not json"}\n'
        '{"received_at":"2026-11-27T13:00:00.123Z","source":"s","payload":"{\\"bad\\": NaN}"}\n'
    )


async def test_raw_lines_are_the_payload_and_one_message_stays_one_line(tmp_path: Path) -> None:
    sink = FileSink(config(tmp_path / "{source}.txt", format="raw"))
    sink.send(delivery('{"a": 1}'))
    sink.send(delivery('{\n  "pretty": "json"\r\n}'))
    sink.send(delivery("plain text"))
    async with running(sink):
        pass
    got = lines(tmp_path / "s.txt")
    assert got == ['{"a": 1}', '{   "pretty": "json"  }', "plain text"]
    assert json.loads(got[1]) == {"pretty": "json"}


@pytest.mark.parametrize("odd", [None, b"\x00bin", "two\nlines"])
async def test_a_raw_batch_is_every_line_in_order_and_counted(tmp_path: Path,
                                                               odd: str | bytes | None) -> None:
    # A batch of plain text is written in one piece; one binary or multi-line payload in it
    # must still come out as exactly one line of its own, with the count right either way.
    sink = FileSink(config(tmp_path / "{source}.txt", format="raw"))
    payloads: list[str | bytes] = [f'{{"n":{n}}}' for n in range(500)]
    if odd is not None:
        payloads.insert(250, odd)
    for p in payloads:
        sink.send(delivery(p))
    async with running(sink):
        pass
    want = [base64.b64encode(p).decode() if isinstance(p, bytes) else p.replace("\n", " ")
            for p in payloads]
    assert lines(tmp_path / "s.txt") == want
    assert sink.stats.written == len(payloads)


async def test_binary_payloads_are_base64_and_the_envelope_says_so(tmp_path: Path) -> None:
    env = FileSink(config(tmp_path / "env.jsonl"))
    raw = FileSink(config(tmp_path / "raw.txt", format="raw"))
    for sink in (env, raw):
        sink.send(delivery(b"\x00\xffbin"))
        async with running(sink):
            pass
    assert json.loads((tmp_path / "env.jsonl").read_text()) == {
        "received_at": "2026-11-27T13:00:00.123Z", "source": "s",
        "payload": "AP9iaW4=", "encoding": "base64",
    }
    assert (tmp_path / "raw.txt").read_text() == "AP9iaW4=\n"


async def test_path_creates_directories_and_source_values_cannot_escape(tmp_path: Path) -> None:
    root = tmp_path / "out"
    sink = FileSink(config(root / "{source}" / "feed.jsonl", format="raw"))
    sink.send(delivery("one", source="alpha"))
    sink.send(delivery("two", source="../../escape"))
    async with running(sink):
        pass
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["out/______escape/feed.jsonl", "out/alpha/feed.jsonl"]
    assert lines(root / "alpha" / "feed.jsonl") == ["one"]


async def test_size_rotation_never_lets_a_file_pass_max_bytes(tmp_path: Path) -> None:
    base = tmp_path / "feed.txt"
    sink = FileSink(config(base, format="raw", max_bytes=10), wall=Clock(T))
    async with running(sink):
        sink.send(delivery("0001"))
        await sink.flush()
        for n in ("0002", "0003", "0004", "0005"):
            sink.send(delivery(n))
    stamp = "feed.txt.20261127T130000Z"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.txt", stamp, stamp + ".1"]
    assert lines(tmp_path / stamp) == ["0001", "0002"]
    assert lines(tmp_path / (stamp + ".1")) == ["0003", "0004"]
    assert lines(base) == ["0005"]
    assert sink.stats.rotations == 2


async def test_hourly_rotation_follows_the_wall_clock(tmp_path: Path) -> None:
    clock = Clock(T + HOUR - 1.123)  # 13:59:59
    sink = FileSink(config(tmp_path / "feed.txt", format="raw", rotate="hourly"), wall=clock)
    async with running(sink):
        sink.send(delivery("late in the 13h"))
        await sink.flush()
        clock.t = T + HOUR - 0.123  # 14:00:00
        sink.send(delivery("first of the 14h"))
        await sink.flush()
        sink.send(delivery("second of the 14h"))
    assert lines(tmp_path / "feed.txt.20261127T130000Z") == ["late in the 13h"]
    assert lines(tmp_path / "feed.txt") == ["first of the 14h", "second of the 14h"]


async def test_keep_deletes_the_oldest_rotated_files(tmp_path: Path) -> None:
    sink = FileSink(config(tmp_path / "f.txt", format="raw", max_bytes=2, keep=2), wall=Clock(T))
    for n in "123456":
        sink.send(delivery(n))
    async with running(sink):
        pass
    stamp = "f.txt.20261127T130000Z"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", stamp + ".3", stamp + ".4"]
    assert lines(tmp_path / (stamp + ".3")) == ["4"]
    assert lines(tmp_path / (stamp + ".4")) == ["5"]
    assert lines(tmp_path / "f.txt") == ["6"]


async def test_compress_leaves_valid_gzip_files_with_the_rotated_lines(tmp_path: Path) -> None:
    cfg = config(tmp_path / "f.txt", format="raw", max_bytes=6, compress=True)
    sink = FileSink(cfg, wall=Clock(T))
    for n in ("aa", "bb", "cc"):
        sink.send(delivery(n))
    async with running(sink):
        pass
    stamp = "f.txt.20261127T130000Z"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", stamp + ".gz"]
    assert gzip.decompress((tmp_path / (stamp + ".gz")).read_bytes()) == b"aa\nbb\n"
    assert lines(tmp_path / "f.txt") == ["cc"]


async def test_reopen_after_an_external_rename_writes_a_new_file(tmp_path: Path) -> None:
    base = tmp_path / "f.txt"
    sink = FileSink(config(base, format="raw"))
    async with running(sink):
        sink.send(delivery("before"))
        await sink.flush()
        base.rename(tmp_path / "f.txt.1")  # what logrotate does before its postrotate SIGHUP
        sink.send(delivery("still the open file"))
        await sink.flush()
        sink.reopen()
        sink.send(delivery("after"))
    assert lines(tmp_path / "f.txt.1") == ["before", "still the open file"]
    assert lines(base) == ["after"]


async def test_a_full_disk_is_counted_logged_once_and_heals_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "s.jsonl"
    target.symlink_to("/dev/full")
    sink = FileSink(config(tmp_path / "{source}.jsonl", format="raw"), retry_delay=0.02)
    caplog.set_level(logging.INFO, logger="bridge.sinks.file")
    async with running(sink) as task:
        sink.send(delivery("a"))
        sink.send(delivery("b"))
        await sink.flush()
        assert sink.stats.errors == 1
        await sink.flush()
        sink.send(delivery("c"))
        await sink.flush()
        assert sink.stats.errors == 3
        assert len(sink.queue) == 3 and not task.done()
        target.unlink()  # space is back: the path is an ordinary file again
        await sink.flush()
        assert len(sink.queue) == 0
    assert lines(target) == ["a", "b", "c"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "sink archive" in errors[0] and str(target) in errors[0]
    assert "No space left on device (ENOSPC)" in errors[0]
    assert any("sink archive: writing again" in r.getMessage() for r in caplog.records)


async def test_a_path_that_cannot_exist_fails_alone_while_other_sources_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "blocked").write_text("a file where a directory should be")
    sink = FileSink(config(tmp_path / "{source}" / "d" / "f.txt", format="raw"), retry_delay=0.02)
    async with running(sink):
        sink.send(delivery("x1", source="blocked"))
        sink.send(delivery("ok1", source="fine"))
        await sink.flush()
        sink.send(delivery("ok2", source="fine"))
        await sink.flush()
        assert lines(tmp_path / "fine" / "d" / "f.txt") == ["ok1", "ok2"]
        assert [d.payload for d in sink.queue.take(len(sink.queue))] == ["x1"]
    assert "Not a directory (ENOTDIR)" in caplog.text


async def test_closing_while_the_disk_stays_full_gives_up_on_cancel_and_counts(
    tmp_path: Path,
) -> None:
    (tmp_path / "s.txt").symlink_to("/dev/full")
    sink = FileSink(config(tmp_path / "{source}.txt", format="raw"), retry_delay=0.02)
    task = asyncio.create_task(sink.run())
    sink.send(delivery("lost"))
    await sink.flush()
    sink.close()
    await sink.flush()  # still retrying after close: the disk may come back
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.stats.dropped["write_error"] == 1


@pytest.mark.parametrize(
    ("overflow", "kept", "reason"),
    [("drop_oldest", ["3", "4", "5"], "queue_full_oldest"),
     ("drop_newest", ["1", "2", "3"], "queue_full_newest")],
)
async def test_a_full_queue_drops_by_policy_and_counts_why(
    tmp_path: Path, overflow: Any, kept: list[str], reason: str
) -> None:
    cfg = config(tmp_path / "f.txt", format="raw", queue=QueueConfig(3, overflow))
    sink = FileSink(cfg)
    for n in "12345":
        sink.send(delivery(n))
    async with running(sink):
        pass
    assert lines(tmp_path / "f.txt") == kept
    assert sink.stats.dropped == {reason: 2}


async def test_block_overflow_makes_drain_wait_until_the_writer_makes_room(
    tmp_path: Path,
) -> None:
    sink = FileSink(config(tmp_path / "f.txt", format="raw", queue=QueueConfig(2, "block")))
    sink.send(delivery("1"))
    sink.send(delivery("2"))
    waiter = asyncio.create_task(sink.drain())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    async with running(sink):
        await asyncio.wait_for(waiter, 5)
        sink.send(delivery("3"))
    assert lines(tmp_path / "f.txt") == ["1", "2", "3"]
    assert not sink.stats.dropped


@pytest.mark.parametrize("policy", ["always", "interval"])
async def test_fsync_policy_syncs_each_write_or_once_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: Any
) -> None:
    calls: list[int] = []
    synced = asyncio.Event()
    loop = asyncio.get_running_loop()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        calls.append(fd)
        loop.call_soon_threadsafe(synced.set)

    monkeypatch.setattr(os, "fsync", fsync)
    cfg = config(tmp_path / "f.txt", format="raw", fsync=policy, flush_interval=0.05)
    sink = FileSink(cfg)
    async with running(sink):
        for text in ("one", "two"):
            synced.clear()
            sink.send(delivery(text))
            await sink.flush()
            await asyncio.wait_for(synced.wait(), 5)  # interval: once the sink has been idle
    assert lines(tmp_path / "f.txt") == ["one", "two"]
    assert len(calls) >= 3  # both writes, and the close


@pytest.mark.parametrize(("policy", "while_running"), [("always", 3), ("interval", 1)])
async def test_fsync_always_syncs_every_batch_and_interval_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: Any, while_running: int
) -> None:
    """Three batches within one (hour-long) interval: ``always`` syncs after each of them,
    ``interval`` only after the first (nothing was synced before it); closing syncs once."""
    calls: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        calls.append(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    sink = FileSink(config(tmp_path / "f.txt", format="raw", fsync=policy, flush_interval=3600))
    async with running(sink):
        for text in ("one", "two", "three"):
            sink.send(delivery(text))
            await sink.flush()  # written, and synced when the policy says so
        synced_while_running = len(calls)
    assert lines(tmp_path / "f.txt") == ["one", "two", "three"]
    assert synced_while_running == while_running
    assert len(calls) == while_running + 1  # the close syncs the one open file


async def test_fsync_never_leaves_syncing_to_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    sink = FileSink(config(tmp_path / "f.txt", format="raw"))
    sink.send(delivery("x"))
    async with running(sink):
        pass
    assert calls == []


def test_a_path_placeholder_other_than_source_or_hostname_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only"):
        FileSink(config(tmp_path / "{msg.x}.txt"))
