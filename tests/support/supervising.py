"""The bridge's supervisor run in the test's own event loop, for tests that read its state.

``async with running(path) as supervisor:`` runs a ``Supervisor`` on the config file at
``path`` until the block ends, then stops it and checks that it exited cleanly (0)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from bridge.config.load import load_config
from bridge.supervisor import Supervisor


@contextlib.asynccontextmanager
async def running(path: Path) -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(load_config(path))
    task = asyncio.create_task(supervisor.run())
    try:
        yield supervisor
    finally:
        supervisor.request_stop()
        assert await asyncio.wait_for(task, 20) == 0
