"""A successor connection (``rollover: overlap``) driven beside the live one: its ``connect``
HTTP steps, then opened, its frames in, its deadlines, its actions performed on its own
socket, until it says ``Handover`` (its socket is then the client's to take over) or fails.
It moves bytes and time for the ``Successor``, which holds the protocol, as the client does
for the session."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from bridge.errors import SourceError
from bridge.inflate import Undecodable
from bridge.messages import Message, byte_size
from bridge.protocols.wire import Frames
from bridge.stats.source import SourceStats
from bridge.upstream.actions import Action, Deliver, Fail, Send
from bridge.upstream.attempt import Dial, Fetch
from bridge.upstream.handoff import Handover
from bridge.upstream.http_result import HttpRequest, HttpResult
from bridge.upstream.successor import Successor


class Socket(Protocol):
    """What a successor's connection is used for here (``bridge.upstream.connection``)."""

    async def recv(self) -> str | bytes: ...

    async def send(self, data: str | bytes) -> None: ...


C = TypeVar("C", bound=Socket)


class Overlap(Generic[C]):
    """The successor of one source's live connection, at most one: ``begin`` runs it in a
    task; ``end`` is how it ended (its socket when it took over, else its error) for the live
    connection's loop to act on; ``drop`` when the live connection goes. ``fetch`` runs an
    HTTP step's request, ``dial`` and ``close`` open and close a socket, ``frames`` decodes
    frames (as for the live connection), ``deliver`` takes data, ``other`` any action that
    needs no socket, ``wake`` tells the live connection's loop that ``end`` is set; the
    successor decodes its frames with ``frames``, made for it (``Frames.fresh``), which the
    client takes over with its socket."""

    __slots__ = ("_clock", "_close", "_deliver", "_dial", "_fetch", "_frames", "_other",
                 "_source", "_stats", "_wake", "_wall", "end", "frames", "task")

    def __init__(self, source: str, stats: SourceStats, clock: Callable[[], float], *,
                 wall: Callable[[], float], dial: Callable[[Dial], Awaitable[C]],
                 fetch: Callable[[HttpRequest], Awaitable[HttpResult | str]],
                 frames: Frames | None,
                 close: Callable[[C], Awaitable[None]],
                 deliver: Callable[[Message], Awaitable[None] | None],
                 other: Callable[[Action], None], wake: Callable[[], None]) -> None:
        self._source, self._stats, self._clock, self._wall = source, stats, clock, wall
        self._dial, self._close, self._deliver, self._other = dial, close, deliver, other
        self._wake, self._fetch, self._frames = wake, fetch, frames
        self.task: asyncio.Task[None] | None = None
        self.end: tuple[Successor, C | SourceError] | None = None
        self.frames: Frames | None = None

    def begin(self, leg: Successor) -> None:
        self.frames = None if self._frames is None else self._frames.fresh()
        self.task = asyncio.create_task(self._run(leg), name=f"source:{self._source}:rollover")

    async def drop(self) -> None:
        """The live connection ended (or the source stops): a successor on its way goes too."""
        task, end, self.task, self.end = self.task, self.end, None, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            end, self.end = self.end, None
        if end is not None and not isinstance(end[1], SourceError):
            await self._close(end[1])

    async def _run(self, leg: Successor) -> None:
        conn = None
        try:
            conn = await self._dial(await self._connecting(leg))
            await self._lead(leg, conn)
            self.end, conn = (leg, conn), None  # the live connection's loop takes it
        except SourceError as exc:
            self.end = (leg, exc)
        finally:
            if conn is not None:  # failed, or cancelled with the live connection
                await self._close(conn)
        self._wake()

    async def _connecting(self, leg: Successor) -> Dial:
        """Its ``connect`` HTTP steps, in order, then where to dial; raises what fails it."""
        actions = leg.connecting(self._clock())
        while True:
            for action in actions:
                if isinstance(action, Fail):
                    raise action.error
                if isinstance(action, Dial):
                    return action
                if not isinstance(action, Fetch):
                    self._other(action)  # Redact: the secrets the answer holds
            step = next(a for a in actions if isinstance(a, Fetch))
            actions = leg.fetched(step.request, await self._fetch(step.request), self._clock())

    async def _lead(self, leg: Successor, conn: C) -> None:
        loop, clock, stats = asyncio.get_running_loop(), self._clock, self._stats
        actions = leg.start(clock())
        while not await self._perform(conn, actions):
            due = leg.deadline()
            try:
                async with asyncio.timeout_at(None if due is None else
                                              loop.time() + due - clock()):
                    data = await conn.recv()
            except TimeoutError:
                actions = leg.tick(clock())
                continue
            stats.received += 1
            stats.bytes += byte_size(data)
            actions = self._screen(leg, data)

    def _screen(self, leg: Successor, data: str | bytes) -> list[Action]:
        """A frame's messages (decoded by the source's ``frames``, as on the live connection)
        screened by ``leg``; one that cannot be decoded is the live connection's to count,
        which receives the same stream."""
        msg, clock = Message(self._source, data, self._wall()), self._clock
        if self.frames is None:
            return leg.screen(msg, clock())
        out: list[Action] = []
        for item in self.frames.decode(data, msg.received_at):
            if not isinstance(item, Undecodable):
                out += leg.screen(item, clock())
        return out

    async def _perform(self, conn: C, actions: list[Action]) -> bool:
        """The successor's ``actions`` on its connection; True when ``Handover`` was among
        them (what a frame held after it is its data, performed too)."""
        handed = False
        for action in actions:
            if isinstance(action, Send):
                await conn.send(action.data)
                self._stats.sent += 1
            elif isinstance(action, Deliver):
                if (pending := self._deliver(action.msg)) is not None:
                    await pending
            elif isinstance(action, Fail):
                raise action.error
            elif isinstance(action, Handover):
                handed = True
            else:
                self._other(action)
        return handed
