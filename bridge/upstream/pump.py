"""One connection's frames in, the hot path: each frame counted, decoded (the source's
``frames``), screened by the session or passed on unread, and delivered to the routes.

A frame goes as far as it can without waiting. While the driver's task waits (``next``), the
connection hands frames over in websockets' data callback (``Connection.consume``), and for an
ordinary data message that is all the way: no task is woken for it. What needs waiting (a
sink's back-pressure, the session's actions, a frame decoded into several messages) is left as
a ``Rest``, and the wait ends; the callback then hands over no more frames, so the ones that
come meanwhile wait in websockets' buffer behind the rest, in order. The session's rules stay the
session's: this only feeds it frames (``screen``) and carries out what it says."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.inflate import Undecodable
from bridge.messages import INVALID, Message, byte_size
from bridge.protocols.wire import Frames
from bridge.stats.source import SourceStats
from bridge.upstream.actions import UNREAD, Action

DeliverFn = Callable[[Message], Awaitable[None] | None]
Step = Callable[[str | bytes], "Rest | None"]  # one frame in (``Pump.arm``)


class Screens(Protocol):
    """What the pump asks of the session (``Session`` has it)."""

    def screen(self, msg: Message, now: float) -> list[Action] | None: ...

    def unread_invalid(self, now: float) -> list[Action]: ...


class Feed(Protocol):
    """What the pump asks of a connection (``Connection`` has it)."""

    def consume(self, consumer: Callable[[str | bytes], None] | None) -> bool: ...

    async def recv(self) -> str | bytes: ...


class Rest:
    """What is left of one frame for the task: ``pending`` back-pressure to await, then
    ``actions`` to perform; or ``items`` decoded from ``frame``, to screen one by one."""

    __slots__ = ("actions", "frame", "items", "now", "pending")

    def __init__(self, now: float, pending: Awaitable[None] | None = None,
                 actions: list[Action] | None = None,
                 items: list[Message | Undecodable] | None = None,
                 frame: str | bytes = "") -> None:
        self.now, self.pending, self.actions, self.items, self.frame = \
            now, pending, actions, items, frame


class Pump:
    """``step`` takes one frame as far as it goes without waiting (``arm`` makes it for each run
    of the driver); ``next`` waits while the connection hands frames to ``take`` (``step`` as
    its consumer). It keeps ``heard``, when the last frame passed unread (or holding no whole
    message yet) came, for the session's ``tick``. ``frames``: the live connection's decoding
    (``Frames.fresh`` for each connection), bound by ``arm``."""

    __slots__ = ("_clock", "_feed", "_name", "_roused", "_session", "_stats", "_wall",
                 "frames", "heard", "held", "rest", "step")

    def __init__(self, name: str, stats: SourceStats, session: Screens, *,
                 frames: Frames | None, clock: Callable[[], float],
                 wall: Callable[[], float], deliver: DeliverFn) -> None:
        self._name, self._stats, self._session, self.frames = name, stats, session, frames
        self._clock, self._wall = clock, wall
        self.heard = 0.0
        self.step = self.arm(deliver, False)
        self.rest: Rest | Exception | None = None  # what ``take`` left the task, or its error
        self.held: str | bytes | None = None  # received as ``next`` was cut short: read it first
        self._feed: Feed | None = None  # the connection handing frames over, during ``next``
        self._roused: asyncio.Future[None] | None = None  # done once ``take`` left a rest

    async def next(self, feed: Feed) -> str | bytes | None:
        """Wait while ``feed`` hands its frames to ``take``: the next one it does not hand over
        (fragments: ``recv``'s), or None once ``take`` left a ``rest``. A frame may come with
        a rest: the rest goes first."""
        if not feed.consume(self.take):
            return await feed.recv()
        self._feed = feed
        self._roused = roused = asyncio.get_running_loop().create_future()
        recv = asyncio.ensure_future(feed.recv())
        try:
            await asyncio.wait((recv, roused), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the driver's wait was cut short (an event, a deadline)
            if recv.done() and not recv.cancelled() and recv.exception() is None:
                self.held = recv.result()  # it came meanwhile: the driver's next read, not lost
            raise
        finally:
            self.halt()
            self._roused = None
            if not recv.done():
                recv.cancel()  # websockets' recv may be cancelled: its frames stay buffered
                await asyncio.wait((recv,))  # over before the next recv starts
        return None if recv.cancelled() else recv.result()

    def halt(self) -> None:
        """No more frames handed over: the task reads them (it has an event to serve first)."""
        if (feed := self._feed) is not None:
            self._feed = None
            feed.consume(None)

    def take(self, data: str | bytes) -> None:
        """``step`` in websockets' data callback. A frame that leaves a rest (or an error,
        raised in the task as if it had read the frame) ends the hand-over and ``next``."""
        try:
            if (rest := self.step(data)) is None:
                return
        except Exception as exc:  # noqa: BLE001 - not lost: raised again in the task
            self.rest = exc
        else:
            self.rest = rest
        self.halt()
        if (roused := self._roused) is not None and not roused.done():
            roused.set_result(None)

    def arm(self, deliver: DeliverFn, unread: bool) -> Step:
        """``step`` for one run of the driver, with ``deliver`` and ``unread`` (the session's
        ``Unread``: frames pass without ``screen``) bound, and the rest in local names: it runs
        once per frame."""
        name, stats, session, frames, clock, wall = \
            self._name, self._stats, self._session, self.frames, self._clock, self._wall
        screen, pump = session.screen, self

        def step(data: str | bytes) -> Rest | None:
            """One frame in: None once delivered with nothing to wait for, else its rest."""
            now = clock()
            stats.received += 1
            stats.bytes += byte_size(data)
            if frames is None:
                msg = Message(name, data, wall())
            elif len(items := frames.decode(data, wall())) == 1 and \
                    not isinstance(first := items[0], Undecodable):
                msg = first  # one message: on as any other
            elif not items:  # a message that goes on in the next frames: heard, nothing yet
                pump.heard = now
                return None
            else:  # several, or one that could not be decoded: one by one, by the task
                return Rest(now, items=items, frame=data)
            if unread:
                pump.heard = now
                actions: list[Action] | None = UNREAD
            elif (actions := screen(msg, now)) is not None and actions is not UNREAD:
                return Rest(now, actions=actions)
            pending = deliver(msg)
            if actions is UNREAD and msg.parsed is INVALID and not msg.is_binary:  # by a route
                actions = session.unread_invalid(now) or None
            else:
                actions = None
            return None if pending is None and actions is None else Rest(now, pending, actions)

        self.step = step
        return step
