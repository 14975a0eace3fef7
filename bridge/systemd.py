"""Tell systemd about readiness, reloads, shutdown and liveness (sd_notify) with the stdlib only.

The protocol is one datagram per call on the AF_UNIX socket named by ``$NOTIFY_SOCKET``, holding
newline-separated ``KEY=value`` assignments. A name starting with ``@`` is an abstract socket.
Without ``$NOTIFY_SOCKET`` (not under systemd, or a unit that is not ``Type=notify*``) every
method does nothing, so callers never need to check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger("bridge.systemd")

# A full systemd queue must not freeze the event loop; a late notification is worth less than that.
_SEND_TIMEOUT = 0.5


def _socket_address(value: str) -> str | None:
    """The address to send to: a path, or the abstract name with its leading NUL byte."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """Half the watchdog timeout systemd set for this process, or None when there is none."""
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


def _oneline(text: str) -> str:
    """Keep a free-text value on one line, so it cannot smuggle in another assignment."""
    return " ".join(text.splitlines())


class Notifier:
    """Sends sd_notify messages; a no-op when the service manager did not ask for them."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(raw)
        if raw and self._address is None:
            logger.warning("NOTIFY_SOCKET %r is not a path or @abstract name; not notifying", raw)
        self._watchdog = _watchdog_seconds(env)
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True when notifications go somewhere."""
        return self._address is not None

    def ready(self, status: str | None = None) -> None:
        """Startup or a reload finished: the service is fully up."""
        self._send("READY=1" if status is None else f"READY=1\nSTATUS={_oneline(status)}")

    def status(self, text: str) -> None:
        """A one-line summary shown by `systemctl status`."""
        self._send(f"STATUS={_oneline(text)}")

    def reloading(self) -> None:
        """A reload started; the timestamp lets systemd match it to the reload it asked for."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        """Shutdown started."""
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        """One liveness ping."""
        self._send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog is armed."""
        return self._watchdog if self.enabled else None

    async def watchdog_loop(self) -> None:
        """Ping from the event loop itself until cancelled, so a blocked loop misses its pings."""
        interval = self.watchdog_interval()
        if interval is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            # A socket per message, as libsystemd does: nothing to hold open or leak, and a
            # manager that re-created its socket is found again.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(_SEND_TIMEOUT)
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            if not self._failing:
                # Once per outage: a vanished socket would otherwise log every watchdog ping.
                logger.warning("cannot notify systemd: %s", exc)
            self._failing = True
            return
        if self._failing:
            logger.info("notifying systemd again")
        self._failing = False
