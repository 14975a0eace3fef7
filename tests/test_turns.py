"""The loop's turns while messages flow (``bridge.turns``), on a real event loop with an injected
clock and sleep: when a turn is held, for how long, and that the sinks' writes come first."""

from __future__ import annotations

import asyncio

import pytest

from bridge.turns import BUSY, BUSY_FOR, Turns

HOLD = 0.0004


class Clock:
    """Time that moves only when told to, or when the loop is held (``sleep``)."""

    def __init__(self, late: float = 0.0) -> None:
        self.now = 100.0
        self.late = late  # how much longer than asked each sleep lasts, as the kernel's do
        self.slept: list[float] = []
        self.log: list[str] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.log.append("hold")
        self.slept.append(round(seconds, 9))
        self.now += seconds + self.late


class Sink:
    """A sink as ``Turns`` sees it: its queue."""

    def __init__(self, waiting: int) -> None:
        self.queue = [object()] * waiting


def turns(clock: Clock, hold: float = HOLD, pending: bool = False) -> Turns:
    return Turns(hold, {"idle": Sink(0), "other": Sink(int(pending))}, clock=clock,
                 sleep=clock.sleep)


async def next_turn() -> None:
    """Until the callbacks scheduled so far (the turn's end) have run."""
    await asyncio.sleep(0)


async def turn(t: Turns, clock: Clock, messages: int = 1, took: float = 0.0) -> None:
    """One loop turn that routes ``messages``, taking ``took`` seconds, then its end."""
    for _ in range(messages):
        t.routed()
    clock.now += took
    await next_turn()


async def test_a_message_after_a_quiet_spell_is_not_held_back() -> None:
    clock = Clock()
    t = turns(clock)
    await turn(t, clock, took=0.0001)
    assert clock.slept == []
    clock.now += 1.0  # quiet
    await turn(t, clock)
    assert clock.slept == []


async def test_while_messages_flow_a_turn_is_held_until_hold_has_passed_since_its_first(
) -> None:
    clock = Clock()
    t = turns(clock)
    await turn(t, clock, took=0.0001)  # the first after a quiet spell: written, not held
    clock.now += 0.0002  # the next comes sooner than HOLD after it
    await turn(t, clock, messages=3, took=0.0001)
    assert clock.slept == [pytest.approx(HOLD - 0.0001)]  # HOLD since this turn's first message
    await turn(t, clock, messages=5, took=0.00005)  # what came while it was held
    assert clock.slept == [pytest.approx(HOLD - 0.0001), pytest.approx(HOLD - 0.00005)]


async def test_a_turn_that_took_half_the_hold_is_not_held() -> None:
    clock = Clock()
    t = turns(clock)
    await turn(t, clock)
    await turn(t, clock, messages=3, took=HOLD * 0.6)  # the loop is busy: over half the hold
    assert clock.slept == []
    await turn(t, clock, messages=3, took=HOLD / 2 - 0.00001)  # the loop has time to spare
    assert clock.slept == [pytest.approx(HOLD / 2 + 0.00001)]


async def test_after_a_burst_no_turn_is_held_for_a_while() -> None:
    # Between the large reads of a burst come turns of a few messages: holding them cost up to
    # 12 % of a burst's throughput. A turn of BUSY messages or more keeps every turn unheld for
    # BUSY_FOR holds.
    clock = Clock()
    t = turns(clock)
    await turn(t, clock)
    await turn(t, clock, messages=BUSY, took=0.00001)
    for _ in range(BUSY_FOR - 1):
        await turn(t, clock, messages=2, took=HOLD / 2 * 0.9)
    assert clock.slept == []
    clock.now += BUSY_FOR * HOLD  # the burst is over
    await turn(t, clock, messages=2)
    await turn(t, clock, messages=2)
    assert clock.slept == [pytest.approx(HOLD)]


async def test_a_turn_that_leaves_a_sink_with_a_queue_is_not_held() -> None:
    clock = Clock()
    t = turns(clock, pending=True)  # a full window, a broker down
    await turn(t, clock)
    await turn(t, clock)
    assert clock.slept == []


async def test_coalesce_0_holds_nothing_and_writes_still_come_at_the_end_of_the_turn() -> None:
    clock = Clock()
    t = turns(clock, hold=0.0)
    t.soon(lambda: clock.log.append("write"))
    for _ in range(3):
        await turn(t, clock)
    assert clock.log == ["write"] and clock.slept == []


async def test_the_sinks_writes_come_before_the_hold_even_those_scheduled_later_in_the_turn(
) -> None:
    clock = Clock()
    t = turns(clock)
    await turn(t, clock)
    clock.log.clear()
    t.soon(lambda: clock.log.append("write"))  # a sink's end-of-turn write, as it routes
    t.routed()
    t.soon(lambda: clock.log.append("refill"))  # the broker's acks, read after the messages
    await next_turn()
    assert clock.log == ["write", "refill", "hold"]


async def test_a_write_that_fails_is_reported_and_the_others_still_run() -> None:
    clock = Clock()
    t = turns(clock)
    loop = asyncio.get_running_loop()
    reported: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
    try:
        t.soon(lambda: 1 / 0)  # type: ignore[func-returns-value]
        t.soon(lambda: clock.log.append("write"))
        await next_turn()
    finally:
        loop.set_exception_handler(None)
    assert clock.log == ["write"]
    assert [type(e) for e in reported] == [ZeroDivisionError]


async def test_a_reload_changes_the_hold_from_the_next_turn() -> None:
    clock = Clock()
    t = turns(clock)
    await turn(t, clock)
    t.hold = 0.001
    await turn(t, clock, took=0.0001)
    assert clock.slept == [pytest.approx(0.0009)]


async def test_a_hold_that_the_kernel_ends_late_is_asked_shorter_so_it_ends_on_time() -> None:
    clock = Clock(late=0.0001)  # timer slack and scheduling: each sleep a tenth of a ms long
    t = turns(clock)
    await turn(t, clock)
    for _ in range(60):
        first = clock.now
        await turn(t, clock, took=0.0001)
    assert clock.now - first == pytest.approx(HOLD, rel=0.01)  # not HOLD + 0.0001
    assert clock.slept[0] == pytest.approx(HOLD - 0.0001)  # the turn took 0.1 ms
    assert clock.slept[-1] == pytest.approx(HOLD - 0.0001 - 0.0001, rel=0.01)  # and 0.1 late
