"""The pool's pure rules, without sockets: stable assignment, connect_every spacing, a share's
config, the pool's one state, per-item refusals in the session, sharding by item, the status."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from bridge.config.model import Config, SourceConfig
from bridge.config.pooling import PoolSpec
from bridge.config.specs import Step
from bridge.messages import Message
from bridge.routing.context import Context
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.shard import shard_config
from bridge.stats.snapshot import Snapshot, SourceSnapshot
from bridge.status_table import format_status_table
from bridge.upstream.actions import Refused, Send, SetState
from bridge.upstream.assign import Assignment, Change
from bridge.upstream.attempt import Dial
from bridge.upstream.pool_state import pool_state
from bridge.upstream.session import Session
from bridge.upstream.share import each_steps, expand, share_config
from bridge.upstream.spacing import Spacing
from bridge.upstream.state import ConnState

ITEMS = tuple(f"i{n}" for n in range(10))
EACH = Step(Template({"method": "SUBSCRIBE", "params": "{items}", "id": "{seq}"},
                     {"items": "", "item": ""}), Pattern({"result": None}),
            Pattern({"error": {}}), each=True, batch=2)


def pooled(items: tuple[str, ...] = ITEMS, url: str = "ws://127.0.0.1:1/ws", **kw: Any
           ) -> SourceConfig:
    return SourceConfig(name="src", url=url, subscribe=(EACH,),
                        pool=PoolSpec(items, 4, 5, **kw))


# -- assignment ---------------------------------------------------------------------------------

def test_items_fill_connections_in_order_and_a_reload_keeps_what_stays() -> None:
    plan = Assignment(per=4, slots=5)
    first = plan.place(ITEMS)
    assert plan.shares == {0: ITEMS[:4], 1: ITEMS[4:8], 2: ITEMS[8:]}
    assert all(change.opened for change in first.values())
    changes = plan.place((*ITEMS[1:], "new1", "new2", "new3", "new4"))
    assert changes == {0: Change(("new1",), ("i0",)), 2: Change(("new2", "new3"), ()),
                       3: Change(("new4",), (), opened=True)}
    assert plan.shares[1] == ITEMS[4:8]  # untouched


def test_a_slot_emptied_by_a_reload_closes_and_too_many_items_are_refused() -> None:
    plan = Assignment(per=4, slots=2)
    plan.place(ITEMS[:8])
    assert plan.place(ITEMS[:4]) == {1: Change((), ITEMS[4:8])}
    assert plan.shares == {0: ITEMS[:4]}
    with pytest.raises(ValueError, match="do not fit"):
        plan.place(ITEMS)


# -- spacing ------------------------------------------------------------------------------------

def test_openings_are_spaced_and_a_429_doubles_the_spacing_until_one_opens() -> None:
    gaps = Spacing(1.0)
    assert [gaps.claim(10.0) for _ in range(3)] == [10.0, 11.0, 12.0]
    gaps.refused(429, 12.0)
    assert gaps.gap == 2.0 and gaps.claim(12.0) == 14.0
    gaps.refused(418, 14.0)
    assert gaps.gap == 4.0
    gaps.refused(503, 14.0)  # not a rate limit: the spacing stays
    assert gaps.gap == 4.0
    gaps.opened()
    gaps.opened()
    assert gaps.gap == 1.0


def test_no_spacing_still_backs_off_after_a_429() -> None:
    gaps = Spacing(0.0)
    assert gaps.claim(5.0) == gaps.claim(5.0) == 5.0
    gaps.refused(429, 5.0)
    assert gaps.gap > 0 and gaps.claim(5.0) > 5.0


# -- a share's config ---------------------------------------------------------------------------

def test_a_share_sends_its_items_in_batches_as_json_lists() -> None:
    cfg = share_config(pooled(), ("a", "b", "c"))
    assert [step.items for step in cfg.subscribe] == [("a", "b"), ("c",)]
    assert [step.send.spec["params"] for step in cfg.subscribe] == [["a", "b"], ["c"]]
    assert not any(step.each for step in cfg.subscribe)


def test_items_are_literal_text_and_fill_urls_and_single_item_whens() -> None:
    one = Step(Template({"sub": "{item}", "all": "x:{items}"}, {"items": "", "item": ""}),
               when=Pattern({"stream": "{item}"}), each=True)
    cfg = share_config(SourceConfig(name="s", url="ws://h/s?streams={items}", subscribe=(one,),
                                    pool=PoolSpec(("{seq}", "b"), url_join="/")), ("{seq}", "b"))
    assert cfg.url == "ws://h/s?streams={{seq}}/b"  # template text (rendered before dialing)
    assert Dial("ws://h/s?streams={seq}/b", {}) in Session(cfg).connecting(0.0)  # as written
    first = cfg.subscribe[0]
    assert first.when == Pattern({"stream": "{seq}"})
    ctx = Context("s", None, "", 0.0, lambda: 7, "", None)
    assert first.send.render(ctx) == {"sub": "{seq}", "all": "x:{seq}"}  # not the counter
    assert expand(each_steps((one, EACH)), ()) == ()


# -- the pool's state ---------------------------------------------------------------------------

@pytest.mark.parametrize(("states", "pool"), [
    ([ConnState.CONNECTED] * 3, ConnState.CONNECTED),
    ([ConnState.CONNECTED, ConnState.RECONNECTING, ConnState.SUBSCRIBING],
     ConnState.RECONNECTING),
    ([ConnState.CONNECTED, ConnState.FAILED], ConnState.CONNECTED),
    ([ConnState.FAILED, ConnState.STOPPED], ConnState.FAILED),
    ([ConnState.STOPPED] * 2, ConnState.STOPPED),
    ([], ConnState.CONNECTED),
])
def test_the_pool_is_connected_once_every_live_connection_is(
    states: list[ConnState], pool: ConnState
) -> None:
    assert pool_state(states) is pool


# -- refusals in the session --------------------------------------------------------------------

def test_an_error_ack_refuses_the_batch_items_and_the_plan_goes_on() -> None:
    cfg = share_config(pooled(), ("a", "b", "c"))
    session = Session(cfg)
    session.connecting()
    first = session.start(0.0)
    assert [json.loads(a.data)["params"] for a in first if isinstance(a, Send)] == [["a", "b"]]
    out = session.receive(Message("src", '{"error":{"code":2},"id":1}', 0.0), 0.1)
    assert out[0] == Refused(("a", "b"), '{"error":{"code":2},"id":1}')
    assert [json.loads(a.data)["params"] for a in out if isinstance(a, Send)] == [["c"]]
    done = session.receive(Message("src", '{"result":null,"id":2}', 0.0), 0.2)
    assert SetState(ConnState.CONNECTED) in done and session.state is ConnState.CONNECTED


def test_a_pool_change_on_a_live_socket_sends_only_the_moved_items() -> None:
    unsub = Step(Template({"method": "UNSUBSCRIBE", "params": "{items}"},
                          {"items": "", "item": ""}), each=True, batch=2)
    base = pooled(items=("a", "b", "c"))
    base = SourceConfig(name="src", url=base.url, subscribe=base.subscribe, unsubscribe=(unsub,),
                        pool=base.pool)
    session = Session(share_config(base, ("a", "b")))
    session.connecting()
    session.start(0.0)
    session.receive(Message("src", '{"result":null,"id":1}', 0.0), 0.1)
    change = (expand(each_steps(base.unsubscribe), ("a",)), expand(each_steps(base.subscribe),
                                                                   ("c",)))
    out = session.resubscribe(share_config(base, ("b", "c")), 1.0, change)
    assert [json.loads(a.data) for a in out if isinstance(a, Send)] == [
        {"method": "UNSUBSCRIBE", "params": ["a"]},
        {"method": "SUBSCRIBE", "params": ["c"], "id": 2}]  # {seq} goes on counting


# -- sharding and status ------------------------------------------------------------------------

def test_shards_split_a_pooled_source_by_item_each_item_exactly_once() -> None:
    items = tuple(f"s{n}" for n in range(200))
    config = Config(path="-", sources=(pooled(items),), sinks={})
    parts = [shard_config(config, k, 3).sources for k in range(3)]
    carried = Counter(i for part in parts for src in part for i in src.pool.items)  # type: ignore[union-attr]
    assert set(carried) == set(items) and set(carried.values()) == {1}
    assert all(len(part) == 1 for part in parts)  # every shard runs a share of it


def test_status_shows_a_pool_as_connections_and_items_with_the_latest_problem() -> None:
    snap = SourceSnapshot(
        name="binance", state="reconnecting", connected_since=None, received=0, bytes=0,
        invalid=0, forwarded={}, dropped={}, reconnects={}, last_message_age=None,
        handshake_seconds=None, grace_until=None,
        connections_up={str(n): int(n != 7) for n in range(50)}, items=48_000, items_up=47_912,
        last_error="connection 7: connection closed (code 1008, too many subscriptions)")
    line = format_status_table(None, Snapshot((snap,), (), 1.0)).splitlines()[1]
    assert "binance  49/50 connected, 47,912/48,000 items (connection 7: connection closed " \
           "(code 1008, too many subscriptions))" in line


def test_expect_every_watches_each_batch_of_a_share_apart() -> None:
    step = Step(Template({"op": "sub", "s": "{item}"}, {"items": "", "item": ""}),
                when=Pattern({"s": "{item}"}), expect_every=5.0, each=True)
    base = SourceConfig(name="src", url="ws://127.0.0.1:1/", subscribe=(step,),
                        pool=PoolSpec(("a", "b")))
    session = Session(share_config(base, ("a", "b")))
    session.connecting()
    opened = session.start(0.0)
    assert [json.loads(a.data) for a in opened if isinstance(a, Send)] == [
        {"op": "sub", "s": "a"}, {"op": "sub", "s": "b"}]
    session.receive(Message("src", '{"s":"a"}', 0.0), 4.0)  # a is alive, b is quiet
    again = session.tick(6.0)
    assert [json.loads(a.data) for a in again if isinstance(a, Send)] == [{"op": "sub", "s": "b"}]


def test_status_shows_why_a_plain_source_is_down() -> None:
    snap = SourceSnapshot(
        name="feed", state="reconnecting", connected_since=None, received=0, bytes=0,
        invalid=0, forwarded={}, dropped={}, reconnects={"closed": 1}, last_message_age=None,
        handshake_seconds=None, grace_until=None,
        last_error="source 'feed': connection closed (code 1008, too many messages)")
    line = format_status_table(None, Snapshot((snap,), (), 1.0)).splitlines()[1]
    assert line.split(None, 1)[1].startswith(
        "reconnecting (source 'feed': connection closed (code 1008, too many messages))")
