"""A pooled source: its items spread over connections, each running the whole session for its
share (auth, subscribe with acks, heartbeats, replies), under one name, one set of routes and
one dedup and sequence state.

Each connection is a member made by ``make`` (the supervisor passes ``SourceClient``), with
the config of its share (``bridge.upstream.share``). Which item goes where is the stable
``Assignment``; ``connect_every`` spaces out every opening through one ``Gate``. A reload that
changes only the items touches only the connections whose share changed: a member is told what
to unsubscribe and subscribe on its live socket, a new one opens for a new slot, an emptied
one closes. ``_replace`` is the seam where a slot's member is swapped for a successor (a URL
that carries the items cannot change on a live socket)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bridge.config.model import SourceConfig
from bridge.config.pooling import ITEMS
from bridge.messages import Message
from bridge.routing.template import Template
from bridge.stats.source import SourceStats
from bridge.upstream.assign import Assignment
from bridge.upstream.conversation import Change
from bridge.upstream.pool_state import pool_state
from bridge.upstream.recovery import Recovery
from bridge.upstream.share import each_steps, expand, share_config
from bridge.upstream.spacing import Gate, Spacing
from bridge.upstream.state import ConnState

logger = logging.getLogger("bridge.upstream")

DeliverFn = Callable[[Message], Awaitable[None] | None]
StateFn = Callable[[str, ConnState], None]
RefusedFn = Callable[[tuple[str, ...], str], None]


class Member(Protocol):
    """One connection of the pool: what the pool needs of a ``SourceClient``."""

    cfg: SourceConfig
    state: ConnState
    stats: SourceStats

    async def run(self) -> None: ...
    def stop(self) -> None: ...
    def retarget(self, deliver: DeliverFn) -> None: ...
    def reconnect(self) -> None: ...
    def resubscribe(self, cfg: SourceConfig, change: Change | None = None) -> None: ...
    def publish(self, send: Template, mqtt: Any) -> None: ...
    def call(self, mqtt: Any, answer: Callable[[str | bytes], None]) -> None: ...


class MakeMember(Protocol):
    """Makes the member for one share (the supervisor's: a ``SourceClient``)."""

    def __call__(self, cfg: SourceConfig, deliver: DeliverFn, *, label: str,
                 recovery: Recovery, gate: Gate, on_state: StateFn,
                 on_refused: RefusedFn) -> Member: ...


class _Gate:
    """``Spacing`` on the event loop's clock: each opening waits for its slot."""

    def __init__(self, every: float, clock: Callable[[], float]) -> None:
        self._spacing, self._clock = Spacing(every), clock

    async def admit(self) -> None:
        delay = self._spacing.claim(self._clock()) - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def opened(self, status: int | None, ok: bool) -> None:
        if ok:
            self._spacing.opened()
        else:
            self._spacing.refused(status, self._clock())


@dataclass(eq=False)
class _Share:
    """One slot: its items, the member carrying them, and the items the upstream refused."""
    slot: int
    items: tuple[str, ...]
    member: Member
    task: asyncio.Task[None] | None = None
    state: ConnState = ConnState.CONNECTING
    refused: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PoolView:
    """The pool as status and metrics show it: each connection's state and reconnects (by
    slot), the items carried by connected members and not refused, the latest problem."""
    connections: dict[str, str]
    reconnects: dict[str, int]
    items: int
    items_up: int
    problem: str | None


class Pool:
    """Runs one pooled source until ``stop()``; the same face to the supervisor as a
    ``SourceClient`` (``run``, ``stop``, ``retarget``, ``resubscribe``, ``reconnect``,
    ``publish``, ``call``, ``state``, ``stats``, ``cfg``); and ``subscribe_again``."""

    def __init__(self, cfg: SourceConfig, deliver: DeliverFn, *, make: MakeMember,
                 on_state: StateFn | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert cfg.pool is not None
        self.cfg, self.state = cfg, ConnState.CONNECTING
        self._deliver, self._make, self._on_state = deliver, make, on_state
        self._recovery = Recovery(cfg)  # shared: dedup and sequence span the pool
        self._gate: Gate = _Gate(cfg.pool.connect_every, clock)
        self._assign = Assignment(cfg.pool.per_connection, cfg.pool.max_connections)
        self._assign.place(cfg.pool.items)
        self._shares: dict[int, _Share] = {}
        self._gone = SourceStats()  # what closed members counted
        self._tg: asyncio.TaskGroup | None = None
        self._ended = asyncio.Event()
        self._stopping = False
        self._log = logging.LoggerAdapter(logger, {"source": cfg.name})

    # -- the supervisor's face -------------------------------------------------------------

    async def run(self) -> None:
        """Open every share's connection (spaced by ``connect_every``) and keep them; return
        once stopped, or once every connection has given up."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for slot, items in sorted(self._assign.shares.items()):
                self._start(slot, items)
            self._log.info("source %s: %d items over %d connections", self.cfg.name,
                           sum(len(s.items) for s in self._shares.values()), len(self._shares))
            self._settle()
            if self._shares:
                await self._ended.wait()
        self._tg = None

    def stop(self) -> None:
        self._stopping = True
        for share in self._shares.values():
            share.member.stop()
        self._ended.set()

    def retarget(self, deliver: DeliverFn) -> None:
        self._deliver = deliver
        for share in self._shares.values():
            share.member.retarget(deliver)

    def resubscribe(self, cfg: SourceConfig) -> None:
        """A reload changed the items or the subscribe messages: only the connections whose
        share changed hear of it; new slots open, emptied ones close."""
        assert cfg.pool is not None
        same_steps = (cfg.subscribe, cfg.unsubscribe) == (self.cfg.subscribe, self.cfg.unsubscribe)
        self.cfg, changes = cfg, self._assign.place(cfg.pool.items)
        for slot, change in sorted(changes.items()):
            items, share = self._assign.shares.get(slot, ()), self._shares.get(slot)
            self._log.info("source %s: connection %d: %d items added, %d removed",
                           cfg.name, slot, len(change.added), len(change.removed))
            if share is None:
                self._start(slot, items)
            elif not items:
                self._retire(share)
            elif ITEMS in cfg.url:  # the items are in the URL: a new connection carries them
                self._replace(share, items)
            else:
                share.items, share.refused = items, share.refused - set(change.removed)
                steps = (expand(each_steps(cfg.unsubscribe), change.removed),
                         expand(each_steps(cfg.subscribe), change.added))
                share.member.resubscribe(share_config(cfg, items), steps if same_steps else None)
        if not same_steps:
            for slot, share in self._shares.items():
                if slot not in changes:
                    share.member.resubscribe(share_config(cfg, share.items))
        self._settle()

    def reconnect(self) -> None:
        """An operator asked for new connections: every member closes its own and opens the
        next (through the gate, ``connect_every`` apart), its counters going on."""
        for share in self._shares.values():
            share.member.reconnect()

    def subscribe_again(self) -> None:
        """An operator asked: every connection sends its share's subscribe steps again (after
        its unsubscribe steps, once connected), as a reload that changed them would."""
        for share in self._shares.values():
            share.member.resubscribe(share_config(self.cfg, share.items))

    def publish(self, send: Template, mqtt: Any) -> None:
        """MQTT to upstream: through one connection, a connected one if there is one."""
        if (share := self._speaker()) is not None:
            share.member.publish(send, mqtt)

    def call(self, mqtt: Any, answer: Callable[[str | bytes], None]) -> None:
        if (share := self._speaker()) is not None:
            share.member.call(mqtt, answer)
        else:
            answer('{"error":"no connection"}')

    @property
    def stats(self) -> SourceStats:
        """The pool's counters: every connection's, those of closed ones included."""
        total = replace(self._gone, reconnects=self._gone.reconnects.copy(),
                        outgoing=self._gone.outgoing.copy(), recovery=self._recovery.counts)
        for share in self._shares.values():
            _add(total, share.member.stats)
        return total

    def view(self) -> PoolView:
        shares = sorted(self._shares.values(), key=lambda s: s.slot)
        up = [s for s in shares if s.state is ConnState.CONNECTED]
        down = [s for s in shares if s.state is not ConnState.CONNECTED]
        problem = next((f"connection {s.slot}: {s.member.stats.last_error}" for s in down
                        if s.member.stats.last_error), None)
        return PoolView(
            connections={str(s.slot): s.state.value for s in shares},
            reconnects={str(s.slot): sum(s.member.stats.reconnects.values()) for s in shares},
            items=sum(len(s.items) for s in shares),
            items_up=sum(len(s.items) - len(s.refused) for s in up), problem=problem)

    # -- members ---------------------------------------------------------------------------

    def _start(self, slot: int, items: tuple[str, ...]) -> None:
        name = self.cfg.name
        holder: list[_Share] = []
        member = self._make(
            share_config(self.cfg, items), self._deliver, label=f"{name}#{slot}",
            recovery=self._recovery, gate=self._gate,
            on_state=lambda _, state: self._member_state(holder[0], state),
            on_refused=lambda refused, reply: self._refused(holder[0], refused, reply))
        share = _Share(slot, items, member)
        holder.append(share)
        self._shares[slot] = share
        if self._tg is not None:
            share.task = self._tg.create_task(member.run(), name=f"source:{name}#{slot}")
            share.task.add_done_callback(lambda _: self._finished())

    def _retire(self, share: _Share) -> None:
        """Close a slot's connection (it unsubscribes and closes); its counts are kept."""
        share.member.stop()
        if self._shares.get(share.slot) is share:
            del self._shares[share.slot]
        _add(self._gone, share.member.stats)

    def _replace(self, share: _Share, items: tuple[str, ...]) -> None:
        """A successor carries the slot from now on; the old member closes."""
        self._retire(share)
        self._start(share.slot, items)

    def _finished(self) -> None:
        live = [s for s in self._shares.values() if s.task is not None and not s.task.done()]
        if not live and not self._stopping:
            self._ended.set()  # every connection gave up (max_attempts)

    def _member_state(self, share: _Share, state: ConnState) -> None:
        share.state = state
        if self._shares.get(share.slot) is share:
            self._settle()

    def _settle(self) -> None:
        state = pool_state(s.state for s in self._shares.values())
        if state is not self.state:
            self.state = state
            if self._on_state is not None:
                self._on_state(self.cfg.name, state)

    def _refused(self, share: _Share, items: tuple[str, ...], reply: str) -> None:
        """The upstream refused items: each logged once and counted, the connection goes on."""
        fresh = [item for item in items if item not in share.refused]
        share.refused.update(items)
        if fresh:
            self._recovery.counts["item_error"] += len(fresh)
            self._log.warning("source %s: connection %d: subscribe refused for %s: %s",
                              self.cfg.name, share.slot, ", ".join(fresh), reply[:200])

    def _speaker(self) -> _Share | None:
        shares = sorted(self._shares.values(), key=lambda s: s.slot)
        return next((s for s in shares if s.state is ConnState.CONNECTED),
                    shares[0] if shares else None)


def _add(total: SourceStats, stats: SourceStats) -> None:
    total.received += stats.received
    total.bytes += stats.bytes
    total.invalid += stats.invalid
    total.sent += stats.sent
    total.connects += stats.connects
    total.reconnects.update(stats.reconnects)
    total.outgoing.update(stats.outgoing)
    total.handshake_seconds = stats.handshake_seconds or total.handshake_seconds
    total.last_error = stats.last_error or total.last_error
