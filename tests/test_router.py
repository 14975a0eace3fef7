"""The router: which routes get a message, and exactly what each sink receives."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import pytest

from bridge.config.model import SourceConfig
from bridge.config.specs import RouteSpec
from bridge.messages import Delivery, Message
from bridge.routing.pattern import Pattern
from bridge.routing.router import Router
from bridge.routing.template import Template
from bridge.sinks.queue import BoundedQueue
from bridge.sinks.settings import QueueConfig, StdoutSinkConfig
from bridge.sinks.stdout import StdoutSink

T = 1795784400.0


class Recorder:
    """A sink that keeps what it is sent, so a test can look at each delivery."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[Delivery] = []
        self.queue = BoundedQueue[Delivery](1)  # never filled: what is sent is kept in ``got``

    def send(self, delivery: Delivery) -> None:
        self.got.append(delivery)

    async def drain(self) -> None:
        return None

    async def run(self) -> None:
        return None

    def close(self) -> None:
        return None

    def source_state(self, source: str, state: str) -> None:
        return None

    def source_removed(self, source: str) -> None:
        return None


class NeverParsed(Message):
    """A message whose JSON must not be looked at."""

    __slots__ = ()

    @property
    def json(self) -> Any:
        raise AssertionError("the router parsed a message no route needed parsed")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def source(*routes: RouteSpec) -> SourceConfig:
    return SourceConfig(name="feed", url="ws://127.0.0.1:1/", routes=routes)


def sinks(*names: str) -> dict[str, Recorder]:
    return {name: Recorder(name) for name in names}


def msg(data: str | bytes) -> Message:
    return Message("feed", data, T)


def test_when_picks_matching_messages_and_a_route_without_when_gets_all() -> None:
    out = sinks("trades", "all")
    trades = RouteSpec("trades", when=Pattern({"e": "trade"}))
    router = Router(source(trades, RouteSpec("all")), out)
    for data in ('{"e": "trade", "p": 1}', '{"e": "depth"}', '{"x": {"e": "trade"}}'):
        assert router.route(msg(data)) is None
    assert [d.payload for d in out["trades"].got] == ['{"e": "trade", "p": 1}']
    assert len(out["all"].got) == 3
    assert router.stats.forwarded == {"trades": 1, "all": 3}


def test_default_payload_is_the_frame_exactly_as_received() -> None:
    out = sinks("a")
    router = Router(source(RouteSpec("a", qos=1, retain=True)), out)
    text, binary = msg('{ "spaced" :  1.50 ,"u":"\\u00e9"}'), msg(b"\x00\xff\x10")
    router.route(text)
    router.route(binary)
    first, second = out["a"].got
    assert first.payload is text.data and first.topic is None
    assert (first.qos, first.retain) == (1, True)
    assert second.payload == b"\x00\xff\x10" and isinstance(second.payload, bytes)


def test_payload_template_selects_part_of_the_message() -> None:
    out = sinks("obj", "text", "built")
    router = Router(source(
        RouteSpec("obj", payload=Template("{msg.data}")),
        RouteSpec("text", payload=Template("{msg.data.name}")),
        RouteSpec("built", payload=Template({"v": "{msg.data.p}", "from": "{source}"})),
    ), out)
    router.route(msg('{"data": {"p": 1.5, "name": "BTC-é"}}'))
    assert out["obj"].got[0].payload == '{"p":1.5,"name":"BTC-é"}'
    assert out["text"].got[0].payload == "BTC-é"
    assert out["built"].got[0].payload == '{"v":1.5,"from":"feed"}'


def test_topic_values_cannot_add_levels_or_wildcards() -> None:
    out = sinks("mqtt")
    router = Router(source(RouteSpec("mqtt", topic=Template("feeds/{source}/{msg.s}"))), out)
    router.route(msg('{"s": "a/b+c#d\\u0000e"}'))
    router.route(msg('{"s": 42}'))
    assert [d.topic for d in out["mqtt"].got] == ["feeds/feed/a_b_c_d_e", "feeds/feed/42"]


def test_per_source_values_are_filled_in_once_and_cleaned_like_any_topic_value() -> None:
    out = sinks("mqtt")
    route = RouteSpec("mqtt", topic=Template("hosts/{hostname}/{source}"),
                      payload=Template({"from": "{source}", "n": "{msg.n}"}))
    router = Router(source(route), out, hostname="rack/1+a")
    router.route(msg('{"n": 7}'))
    (got,) = out["mqtt"].got
    assert got.topic == "hosts/rack_1_a/feed"  # a host name cannot add levels either
    assert got.payload == '{"from":"feed","n":7}'


def test_a_missing_field_is_counted_logged_once_a_minute_and_other_routes_still_get_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = sinks("mqtt", "console")
    clock = Clock(T)
    router = Router(source(
        RouteSpec("mqtt", topic=Template("t/{msg.symbol}")), RouteSpec("console"),
    ), out, wall=clock)
    for _ in range(3):
        router.route(msg('{"other": 1}'))
    clock.t += 61
    router.route(msg('{"other": 2}'))
    assert out["mqtt"].got == [] and len(out["console"].got) == 4
    assert router.stats.render_errors == {0: 4}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "route 0 (sink mqtt)" in warnings[0] and "{msg.symbol}" in warnings[0]
    assert '"other"' not in caplog.text  # payloads never reach the log


def test_routes_without_when_or_templates_never_parse_the_message() -> None:
    out = sinks("a", "b")
    router = Router(source(RouteSpec("a"), RouteSpec("b", topic=Template("fixed/{source}"))), out)
    router.route(NeverParsed("feed", "not json {", T))
    assert [d.payload for d in out["a"].got] == ["not json {"]
    assert out["b"].got[0].topic == "fixed/feed"


def test_invalid_json_skips_when_routes_and_still_reaches_routes_that_take_everything() -> None:
    out = sinks("events", "all")
    events = RouteSpec("events", when=Pattern({"type": "event"}))
    router = Router(source(events, RouteSpec("all")), out)
    router.route(msg("garbage"))
    router.route(msg(b"binary is not invalid JSON"))
    assert out["events"].got == []
    assert [d.payload for d in out["all"].got] == ["garbage", b"binary is not invalid JSON"]


def test_a_route_to_an_unknown_sink_is_refused() -> None:
    with pytest.raises(ValueError, match="no sink named 'nope'"):
        Router(source(RouteSpec("nope")), sinks("a"))


async def test_a_full_block_queue_hands_back_backpressure_to_await() -> None:
    out = io.BytesIO()
    blocking = StdoutSink(StdoutSinkConfig("console", queue=QueueConfig(2, "block")), out)
    dropping = StdoutSink(StdoutSinkConfig("lossy", queue=QueueConfig(1, "drop_oldest")), out)
    router = Router(source(RouteSpec("console"), RouteSpec("lossy")),
                    {"console": blocking, "lossy": dropping})
    assert router.route(msg("1")) is None
    wait = router.route(msg("2"))
    assert wait is not None
    waiting = asyncio.ensure_future(wait)
    await asyncio.sleep(0)
    assert not waiting.done()
    task = asyncio.create_task(blocking.run())
    await asyncio.wait_for(waiting, 5)
    blocking.close()
    await asyncio.wait_for(task, 5)
    assert out.getvalue() == b"1\n2\n"


def test_a_binary_frame_keeps_its_bytes_as_a_payload_and_cannot_become_a_topic() -> None:
    out = sinks("mqtt")
    router = Router(source(RouteSpec("mqtt", payload=Template("{msg}")),
                           RouteSpec("mqtt", topic=Template("feeds/{msg}"))), out)
    router.route(msg(b"\x00\xff"))
    assert [d.payload for d in out["mqtt"].got] == [b"\x00\xff"]  # binary stays binary
    assert router.stats.render_errors == {1: 1}  # counted, with a clear reason in the log


def test_now_ms_in_a_route_is_when_the_message_was_received_as_in_its_mqtt_properties() -> None:
    out = sinks("mqtt")
    router = Router(source(RouteSpec("mqtt", topic=Template("t/{now_ms}"))), out,
                    wall=Clock(T + 5))  # routed 5 s later: a queue held the message back
    router.route(msg("x"))
    assert out["mqtt"].got[0].topic == f"t/{int(T * 1000)}"
