"""Runs the real ``python -m bridge`` as a subprocess and plays systemd's notify socket for it.

Everything here waits on recorded events (a stderr line, a notify datagram, the process exit)
with a bounded timeout; nothing sleeps in place of an event.

Daemon
------
``await Daemon.spawn(*args, env=None, cwd=None, python_code=None)``
    Starts ``python -m bridge ARGS`` (or ``python -c python_code ARGS``) with the interpreter
    running the tests and a clean environment: the test's own, minus systemd and proxy
    variables, plus ``env``.
``pid``, ``returncode`` (None while running), ``stderr`` / ``stdout`` (lines so far),
``log_text`` (all of stderr as one string).
``await wait_log(text, timeout=5.0, start=0) -> str``
    The first stderr line at index >= ``start`` containing ``text``; AssertionError on timeout.
``signal(sig)``, ``await wait_exit(timeout=10.0) -> int``, ``await kill()`` (teardown).
Every daemon spawned is listed in ``SPAWNED`` (with its ``args`` and ``env``), and ``seen(text)``
records other output a test read from one (a metrics page, an HTTP answer) in ``SEEN``:
tests/support/leaks.py greps them all for the secrets of their configs after each test.

NotifySocket
------------
``NotifySocket()`` binds an AF_UNIX datagram socket in a short temporary directory;
``path`` goes into ``NOTIFY_SOCKET``. ``messages`` lists every datagram received, decoded;
``times`` their arrival (loop time).
``await wait_for(predicate, timeout=5.0, start=0) -> int``
    The index of the first message at index >= ``start`` for which ``predicate(text)`` holds.
``close()`` removes the socket and its directory.

Fixture
-------
``spawn``
    ``await spawn(*args, **kwargs) -> Daemon``: ``Daemon.spawn`` (arguments may be paths);
    every daemon still alive at teardown is killed.

``await eventually(check, timeout=5.0, what="", interval=0.02)``
    Polls a cheap async ``check`` (a file's lines, an HTTP answer) until it returns something
    other than None, and returns that; for facts that announce nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal as signal_module
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest_asyncio

REPO = Path(__file__).resolve().parents[2]
# The interpreter running the tests, so a second venv (the [fast] extras) runs its own daemon.
PYTHON = sys.executable
# The child must not inherit a service manager or a proxy from whoever runs the tests.
_SCRUBBED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
             "LISTEN_FDS", "LISTEN_PID", "http_proxy", "https_proxy", "all_proxy",
             "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "ws_proxy", "wss_proxy")

T = TypeVar("T")
SPAWNED: list[Daemon] = []  # every daemon of the current test (tests/support/leaks.py)
SEEN: list[str] = []  # what else a test read from them: metrics pages, HTTP answers


def seen(text: str) -> str:
    """Record ``text``, output read from a daemon, for the leak check; returns it."""
    SEEN.append(text)
    return text


class _Signal:
    """Wakes every waiter whenever something new was recorded."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._event.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


class Daemon:
    """One ``ws-bridge`` subprocess, its output recorded line by line."""

    def __init__(self, proc: asyncio.subprocess.Process, args: tuple[str, ...] = (),
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.proc = proc
        self.args, self.env, self.cwd = args, dict(env or {}), cwd or REPO
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._changed = _Signal()
        assert proc.stderr is not None and proc.stdout is not None
        self._readers = [
            asyncio.create_task(self._read(proc.stderr, self.stderr)),
            asyncio.create_task(self._read(proc.stdout, self.stdout)),
        ]

    @classmethod
    async def spawn(cls, *args: str, env: Mapping[str, str] | None = None,
                    cwd: Path | None = None, python_code: str | None = None) -> Daemon:
        full_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        full_env.update(env or {})
        head = ["-c", python_code] if python_code is not None else ["-m", "bridge"]
        proc = await asyncio.create_subprocess_exec(
            PYTHON, *head, *args, env=full_env, cwd=cwd or REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        daemon = cls(proc, args, full_env, cwd)
        SPAWNED.append(daemon)
        return daemon

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def log_text(self) -> str:
        return "\n".join(self.stderr)

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.notify()
        self._changed.notify()

    async def wait_log(self, text: str, timeout: float = 5.0, start: int = 0) -> str:
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.stderr[start:] if text in line][:1]
            return bool(found) or self._readers[0].done()

        await self._changed.until(seen, timeout, f"{text!r} in the daemon's stderr")
        if not found:
            raise AssertionError(f"the daemon exited without logging {text!r}:\n{self.log_text}")
        return found[0]

    def signal(self, sig: signal_module.Signals) -> None:
        assert self.proc.returncode is None, f"the daemon already exited:\n{self.log_text}"
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            async with asyncio.timeout(timeout):
                code = await self.proc.wait()
                await asyncio.gather(*self._readers)
        except TimeoutError:
            raise AssertionError(
                f"the daemon did not exit within {timeout}s:\n{self.log_text}") from None
        return code

    async def kill(self) -> None:
        """Teardown: SIGKILL if still running, then reap it and its output readers."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.proc.wait()
                await asyncio.gather(*self._readers, return_exceptions=True)
        for reader in self._readers:
            reader.cancel()


class NotifySocket:
    """systemd's end of ``$NOTIFY_SOCKET``: records every datagram the daemon sends."""

    def __init__(self) -> None:
        # tmp_path can exceed the 107-byte AF_UNIX limit; a short directory of our own cannot.
        self._dir = tempfile.mkdtemp(prefix="wsb-")
        self.path = str(Path(self._dir) / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages: list[str] = []
        self.times: list[float] = []  # loop.time() of each message's arrival
        self._changed = _Signal()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 65536)
            self.times.append(loop.time())
            self.messages.append(data.decode())
            self._changed.notify()

    async def wait_for(self, predicate: Callable[[str], bool], timeout: float = 5.0,
                       start: int = 0, what: str = "a notify message") -> int:
        found: list[int] = []

        def seen() -> bool:
            found[:] = [i for i in range(start, len(self.messages))
                        if predicate(self.messages[i])][:1]
            return bool(found)

        await self._changed.until(seen, timeout, f"{what} (got {self.messages[start:]!r})")
        return found[0]

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def assignments(message: str) -> dict[str, str]:
    """``KEY=value`` lines of one notify datagram as a dict."""
    return dict(line.split("=", 1) for line in message.splitlines() if "=" in line)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 5.0,
                     what: str = "a condition", interval: float = 0.02) -> T:
    """Poll the async ``check`` until it returns something other than None; bounded."""
    last: T | None = None
    try:
        async with asyncio.timeout(timeout):
            while (last := await check()) is None:
                await asyncio.sleep(interval)  # polling a fact that announces nothing
            return last
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


Spawn = Callable[..., Awaitable[Daemon]]


@pytest_asyncio.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """Starts daemons; every one still alive at teardown is killed."""
    started: list[Daemon] = []

    async def make(*args: str | Path, **kwargs: Any) -> Daemon:
        started.append(await Daemon.spawn(*map(str, args), **kwargs))
        return started[-1]

    yield make
    for daemon in started:
        await daemon.kill()
