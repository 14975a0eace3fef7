"""A server process started by a test: its pid, whether it runs, its log, stop and kill. The
Mosquitto broker and the real protocol servers (``real_upstreams``) build on it."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


class ServerProcess:
    """What every test server shares; subclasses set ``log_file`` and start ``_proc``."""

    log_file: Path
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.running and self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait(timeout)

    def kill(self) -> None:
        if self.running and self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
