"""After every test that spawned daemons: no secret of their configs in anything they showed.

Each daemon's config (the ``.yaml``/``.json`` file among its arguments) is loaded again with the
daemon's environment, as the daemon loaded it; its secrets (``Config.secrets``: passwords,
tokens, credential headers, sign and jwt keys, URL path and query values, ``${file:}`` values)
are then looked for in every line the daemons wrote to stdout and stderr (logs, errors, the
output of ``check`` and ``status``) and in what the test read from them (``seen``: metrics pages
with their labels, HTTP answers). A config read again after a reload counts too. Values shorter
than 4 characters are skipped, as the redaction skips them (see README, Security).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config.load import load_config
from bridge.errors import ConfigError
from bridge.redaction import SHORTEST
from tests.support.daemon import SEEN, SPAWNED, Daemon


def secrets_of(daemon: Daemon) -> set[str]:
    """The secrets of the config a daemon ran (none when that config is invalid)."""
    found: set[str] = set()
    for arg in daemon.args:
        path = Path(arg) if Path(arg).is_absolute() else daemon.cwd / arg
        if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
            try:
                found |= load_config(path, env=daemon.env).secrets
            except ConfigError:  # an invalid config's own test checks its messages
                continue
    return {s for s in found if len(s) >= SHORTEST}


def leaks(daemons: list[Daemon], seen: list[str], secrets: set[str]) -> list[str]:
    """Every line shown that holds one of ``secrets``, for the failure message."""
    shown = [line for d in daemons for line in (*d.stdout, *d.stderr)]
    shown += [line for text in seen for line in text.splitlines()]
    return [line for line in shown if any(secret in line for secret in secrets)]


@pytest.fixture(autouse=True)
def no_secret_shown() -> Iterator[None]:
    """Fails a test whose daemons showed a secret; set up first, so it checks after teardown."""
    SPAWNED.clear()
    SEEN.clear()
    yield
    daemons, seen = list(SPAWNED), list(SEEN)
    SPAWNED.clear()
    SEEN.clear()
    if not daemons:
        return
    secrets = set().union(*(secrets_of(d) for d in daemons))
    leaked = leaks(daemons, seen, secrets)
    assert leaked == [], f"secrets shown by the daemon: {leaked[:5]}"
