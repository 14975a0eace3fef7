"""``ws-bridge run --workers N``: N processes, each owning one shard of the sources, supervised.

Python runs one event loop on one core; a config with many busy sources uses more cores when
its sources are spread over processes. Each worker is ``ws-bridge run --shard K/N``, so the split
is the same rendezvous hashing users get across machines with ``--shard``. This parent only
supervises: it forwards SIGTERM/SIGINT/SIGHUP, restarts a worker that dies (never one that
exits 78 on a config error, nor one whose sources have all given up), and speaks to systemd for
all of them. Once every worker's sources have given up, the parent exits 1, as one process does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from bridge.systemd import Notifier

log = logging.getLogger("bridge.workers")
EX_CONFIG = 78
# A worker whose sources have all given up exits with this (sysexits' EX_UNAVAILABLE) instead of
# 1, which a crash (an uncaught exception) also gives: the parent must not restart it.
EX_GAVE_UP = 69
WORKER_ENV = "WS_BRIDGE_WORKER"  # set in each worker's environment: "K/N"
STOP_BUDGET = 20.0  # seconds the workers get to unsubscribe, flush and exit
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)  # after successive crashes of one worker


class Workers:
    """Starts, watches and stops the worker processes of one config."""

    def __init__(self, config: Path, count: int, options: list[str]) -> None:
        self.config, self.count, self.options = config, count, options
        self.notifier = Notifier()
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self._crashes = dict.fromkeys(range(count), 0)
        self._gave_up: set[int] = set()
        self._stop = asyncio.Event()
        self.exit_code = 0

    async def _spawn(self, index: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        env[WORKER_ENV] = f"{index}/{self.count}"
        self.procs[index] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", *self.options, "run", str(self.config),
            "--shard", f"{index}/{self.count}", env=env,
        )
        log.info("worker %d/%d started (pid %d)", index, self.count, self.procs[index].pid)

    def _signal_all(self, sig: signal.Signals) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    def _on_stop(self) -> None:
        self._stop.set()

    def _on_reload(self) -> None:
        self.notifier.reloading()
        self._signal_all(signal.SIGHUP)  # each worker re-reads the config and applies its part
        self.notifier.ready(self._status())

    def _status(self) -> str:
        alive = sum(1 for p in self.procs.values() if p.returncode is None)
        return f"{alive}/{self.count} workers running"

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)
        for index in range(self.count):
            await self._spawn(index)
        self.notifier.ready(self._status())
        watchdog = asyncio.create_task(self.notifier.watchdog_loop(), name="watchdog")
        try:
            await self._watch()
        finally:
            watchdog.cancel()
        self.notifier.stopping()
        await self._stop_all()
        return self.exit_code

    async def _watch(self) -> None:
        stop = asyncio.create_task(self._stop.wait())
        while not self._stop.is_set():
            waits = {asyncio.create_task(p.wait()): i for i, p in self.procs.items()
                     if i not in self._gave_up}
            done, _ = await asyncio.wait({stop, *waits}, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            for task in done - {stop}:
                await self._exited(waits[task], task.result())
        stop.cancel()

    async def _exited(self, index: int, code: int) -> None:
        if code == EX_CONFIG:
            log.error("worker %d exited with a config error; stopping every worker", index)
            self.exit_code = EX_CONFIG
            self._stop.set()
            return
        if code == EX_GAVE_UP:
            self._gave_up.add(index)
            self.notifier.status(self._status())
            if len(self._gave_up) == self.count:
                log.error("every source of every worker has given up; stopping")
                self.exit_code = 1
                self._stop.set()
            else:
                log.error("worker %d: every source it owns has given up; not restarting it",
                          index)
            return
        delay = RESTART_DELAYS[min(self._crashes[index], len(RESTART_DELAYS) - 1)]
        self._crashes[index] += 1
        log.error("worker %d exited with code %d; restarting it in %.1fs", index, code, delay)
        self.notifier.status(self._status())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
        if not self._stop.is_set():
            await self._spawn(index)
            self.notifier.status(self._status())

    async def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        waits = [p.wait() for p in self.procs.values() if p.returncode is None]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), STOP_BUDGET)
        except TimeoutError:
            log.warning("workers did not stop within %.0fs; killing them", STOP_BUDGET)
            self._signal_all(signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in self.procs.values()))
        failed = [i for i, p in self.procs.items() if p.returncode not in (0, None, EX_GAVE_UP)]
        if failed and not self.exit_code:
            self.exit_code = 1
