"""The stdout sink: exact lines, one write per batch, and a closed pipe that never crashes."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from typing import Any

import pytest

from bridge.messages import Delivery, Message
from bridge.sinks.settings import QueueConfig, StdoutSinkConfig
from bridge.sinks.stdout import StdoutSink

T = 1795784400.123  # 2026-11-27T13:00:00.123Z


class CountingStream(io.BytesIO):
    """A stdout stand-in that remembers how many writes reached it."""

    writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)


def delivery(data: str | bytes, topic: str | None = None) -> Delivery:
    return Delivery(Message("ticks", data, T), data, topic)


async def drive(sink: StdoutSink) -> None:
    task = asyncio.create_task(sink.run())
    sink.close()
    await asyncio.wait_for(task, 5)


async def test_raw_lines_go_out_in_one_write_per_batch() -> None:
    out = CountingStream()
    sink = StdoutSink(StdoutSinkConfig("console"), out)
    for data in ('{"n": 1}', '{"n": 2}', "multi\nline"):
        sink.send(delivery(data))
    await drive(sink)
    assert out.getvalue() == b'{"n": 1}\n{"n": 2}\nmulti line\n'
    assert out.writes == 1
    assert sink.stats.written == 3


async def test_envelope_lines_carry_time_source_topic_and_payload() -> None:
    out = io.BytesIO()
    sink = StdoutSink(StdoutSinkConfig("console", format="envelope"), out)
    sink.send(delivery('{"price": 1.5}', topic="feeds/ticks"))
    sink.send(delivery(b"\x01\x02"))
    await drive(sink)
    assert out.getvalue().decode().splitlines() == [
        '{"received_at":"2026-11-27T13:00:00.123Z","source":"ticks","topic":"feeds/ticks",'
        '"payload":{"price":1.5}}',
        '{"received_at":"2026-11-27T13:00:00.123Z","source":"ticks","payload":"AQI=",'
        '"encoding":"base64"}',
    ]


async def test_binary_payload_is_one_base64_line_in_raw() -> None:
    out = io.BytesIO()
    sink = StdoutSink(StdoutSinkConfig("console"), out)
    sink.send(delivery(b"\n\x00binary\n"))
    await drive(sink)
    assert out.getvalue() == b"CgBiaW5hcnkK\n"


async def test_a_closed_pipe_is_logged_once_and_output_stops_without_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with io.FileIO(write_end, "w") as pipe:
        sink = StdoutSink(StdoutSinkConfig("console"), pipe)
        task = asyncio.create_task(sink.run())
        sink.send(delivery("first"))
        await sink.flush()
        sink.send(delivery("second"))
        sink.send(delivery("third"))
        await sink.flush()
        sink.close()
        await asyncio.wait_for(task, 5)
    assert sink.stats.errors == 1
    assert sink.stats.dropped == {"stdout_closed": 3}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "sink console" in errors[0].getMessage()


async def test_close_writes_everything_still_queued() -> None:
    out = io.BytesIO()
    sink = StdoutSink(StdoutSinkConfig("console"), out, batch=2)
    task = asyncio.create_task(sink.run())
    for n in range(7):
        sink.send(delivery(str(n)))
    sink.close()
    await asyncio.wait_for(task, 5)
    assert out.getvalue() == b"0\n1\n2\n3\n4\n5\n6\n"
    assert sink.stats.batches == 4


async def test_block_overflow_holds_producers_until_the_batch_is_taken() -> None:
    out = io.BytesIO()
    sink = StdoutSink(StdoutSinkConfig("console", queue=QueueConfig(2, "block")), out)
    sink.send(delivery("a"))
    sink.send(delivery("b"))
    waiter = asyncio.create_task(sink.drain())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    task = asyncio.create_task(sink.run())
    await asyncio.wait_for(waiter, 5)
    sink.close()
    await asyncio.wait_for(task, 5)
    assert out.getvalue() == b"a\nb\n"
    assert not sink.stats.dropped
