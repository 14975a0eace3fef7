"""The file sink: lines appended to per-source paths, rotated, and kept through disk errors.

Each batch the queued-sink core takes is written with one ``write`` per file; lines that could
not be written go back to the front of the queue and are retried after ``retry_delay``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bridge.messages import Delivery
from bridge.routing.sanitize import sanitize_path_value
from bridge.routing.template import Context
from bridge.sinks import rotation as rot
from bridge.sinks.formats import format_line, raw_block
from bridge.sinks.queued import QueuedSink
from bridge.sinks.settings import FileSinkConfig
from bridge.stats.sink import FileSinkStats

logger = logging.getLogger("bridge.sinks.file")


class FileSink(QueuedSink):
    """Appends ``envelope`` or ``raw`` lines; ``run`` never raises on a write error."""

    kind = "file"
    stats: FileSinkStats

    def __init__(self, config: FileSinkConfig, *, wall: Callable[[], float] = time.time,
                 retry_delay: float = 1.0, batch: int = 1000, hostname: str = "") -> None:
        if config.path.roots - {"source", "hostname"}:
            raise ValueError(f"sink {config.name}: the path may use only {{source}}, {{hostname}}")
        super().__init__(config.name, config.queue, FileSinkStats(), batch)
        self.config = config
        self._wall, self._retry_delay, self._host = wall, retry_delay, hostname
        self._interval = 0.0 if config.fsync == "always" else config.flush_interval
        self._files: dict[str, rot.OpenFile] = {}
        self._dirty = False
        self._failing: OSError | None = None
        self._synced, self._done = float("-inf"), 0
        self._jobs, self._job_lock = set[asyncio.Future[None]](), threading.Lock()

    def reopen(self) -> None:
        """Close every file; the next write opens it again by name (SIGHUP after logrotate)."""
        self._forget(*self._files)

    async def _idle(self) -> None:
        """Wait for new lines, or until ``fsync: interval`` is due."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._interval if self._dirty else None):
                await self._wake.wait()
        await self._sync()

    async def _write(self, batch: list[Delivery]) -> None:
        if not self._write_batch(batch):
            await asyncio.sleep(self._retry_delay)
        await self._sync()

    async def _sync(self) -> None:
        """fsync what was written, when the policy says it is due (``always``: every batch)."""
        now = asyncio.get_running_loop().time()
        if self._dirty and now - self._synced >= self._interval:
            self._dirty, self._synced = False, now
            fds = [out.file.fileno() for out in self._files.values()]
            try:
                await asyncio.to_thread(list, map(os.fsync, fds))
            except OSError as exc:
                self._error("fsync failed", exc)

    async def _end(self) -> None:
        if lost := len(self.queue.take(len(self.queue))):
            self.stats.dropped["write_error"] += lost
            logger.error("sink %s: stopping with %d lines not written", self.name, lost)
        self._forget(*self._files)
        await asyncio.gather(*self._jobs, return_exceptions=True)

    def _write_batch(self, batch: list[Delivery]) -> bool:
        """Write one batch, grouped by file; False when some of it could not be written."""
        groups: dict[str, list[Delivery]] = {}
        for d in batch:
            groups.setdefault(d.message.source, []).append(d)
        now, left = self._wall(), list[Delivery]()
        for source, items in groups.items():
            path = self.config.path.render_str(Context(source, hostname=self._host),
                                               sanitize_path_value)
            self._done = 0
            try:
                self._append(path, items, now)
            except OSError as exc:
                left += items[self._done :]
                self._forget(path)  # reopen by name on retry: the target may have been replaced
                self._error(f"cannot write {path}", exc, retry=True)
        self.queue.push_front(left)  # sync since take(), so the queue is still within bounds
        if not left and self._failing is not None:
            logger.warning("sink %s: writing again after %s", self.name, rot.why(self._failing))
            self._failing = None
        return not left

    def _append(self, path: str, items: list[Delivery], now: float) -> None:
        cfg = self.config
        out = self._files.get(path) or self._open(path, now)
        if rot.due_by_time(out.period, now, cfg.rotate):
            out = self._rotate(out, now) if out.size else out
            out.period = rot.period_start(now, cfg.rotate)
        block = raw_block([d.payload for d in items]) if cfg.format == "raw" else None
        whole = block is not None and (not cfg.max_bytes or out.size + len(block) <= cfg.max_bytes)
        lines = [block] if block and whole else [format_line(d, cfg.format) for d in items]
        for i, chunk in enumerate(rot.size_chunks(out.size, lines, cfg.max_bytes)):
            out = self._put(self._rotate(out, now) if i else out, chunk)

    def _put(self, out: rot.OpenFile, lines: list[bytes]) -> rot.OpenFile:
        data = b"".join(lines)
        count = data.count(b"\n")  # one per line: both formats keep line breaks out of a line
        try:
            if (out.file.write(data) or 0) < len(data):  # the disk filled up mid-way
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            with contextlib.suppress(OSError):  # cut the torn line; the retry writes it whole
                os.ftruncate(out.file.fileno(), out.size)
            raise
        out.size += len(data)
        self._done += count
        self.stats.written += count
        self._dirty |= count > 0 and self.config.fsync != "never"
        return out

    def _open(self, path: str, now: float) -> rot.OpenFile:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        file = Path(path).open("ab", buffering=0)  # noqa: SIM115 - kept open across batches
        st = os.fstat(file.fileno())
        period = rot.period_start(st.st_mtime if st.st_size else now, self.config.rotate)
        return self._files.setdefault(path, rot.OpenFile(path, file, st.st_size, period))

    def _rotate(self, out: rot.OpenFile, now: float) -> rot.OpenFile:
        self._forget(out.path)
        stamp = out.period or now  # the hour or day the file covered, else the rotation time
        target = Path(rot.rotated_name(out.path, stamp, lambda name: Path(name).exists()))
        Path(out.path).rename(target)
        self.stats.rotations += 1
        if self.config.compress or self.config.keep:
            job = asyncio.ensure_future(asyncio.to_thread(self._finish, target, Path(out.path)))
            self._jobs = {j for j in self._jobs if not j.done()} | {job}
        return self._open(out.path, now)

    def _finish(self, rotated: Path, base: Path) -> None:
        """In a worker thread, one at a time: gzip ``rotated``, then prune beyond ``keep``."""
        with self._job_lock:
            try:
                if self.config.compress:
                    tmp = rotated.with_name(rotated.name + ".gz.tmp")
                    with rotated.open("rb") as src, gzip.open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    tmp.rename(rotated.with_name(rotated.name + ".gz"))
                    rotated.unlink()
                names = [p.name for p in base.parent.iterdir()]
                for name in rot.expired(base.name, names, self.config.keep):
                    (base.parent / name).unlink(missing_ok=True)
            except OSError as exc:
                self._error(f"cannot gzip or prune {rotated}", exc)

    def _forget(self, *paths: str) -> None:
        for out in [self._files.pop(p) for p in paths if p in self._files]:
            with contextlib.suppress(OSError), out.file:
                if self.config.fsync != "never":
                    os.fsync(out.file.fileno())

    def _error(self, what: str, exc: OSError, *, retry: bool = False) -> None:
        self.stats.errors += 1
        if not (retry and self._failing):  # a failing target is logged once, not per retry
            then = f"; keeping the lines, retrying every {self._retry_delay:g}s" if retry else ""
            logger.error("sink %s: %s: %s%s", self.name, what, rot.why(exc), then)
        self._failing = exc if retry else self._failing
