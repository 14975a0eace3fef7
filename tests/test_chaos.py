"""One minute of the chaos soak (``make chaos`` runs ten; tests/support/chaos.py has the world).

Three numbered streams through the real bridge into a persistent Mosquitto while upstreams are
killed and restarted, the broker and the bridge SIGKILLed and restarted, both links partitioned
and the config reloaded, each fault at least once, in an order and with pauses drawn from a seed
that is printed (``CHAOS_SEED=N`` replays it). The oracle is a real MQTT subscriber: every
number the upstreams made is delivered, first seen in order per source, and the bridge stops
cleanly at the end. Each fault waits for the recovery before the next (an event: every source
delivering a number made after it), so a loaded machine makes the run longer, never wrong.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.support.chaos import KINDS, ChaosRun, Plan


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 65 s quiet; a cap for a loaded host, not an expected time
async def test_one_minute_of_chaos_loses_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(2**31))
    print(f"chaos seed {seed} (replay: CHAOS_SEED={seed} pytest tests/test_chaos.py)")
    result = await ChaosRun(Plan(minutes=1, seed=seed), tmp_path).run()
    print(result.summary())
    assert result.ok, f"seed {seed}: {result.failures()}\n{result.summary()}"
    assert all(result.kinds()[kind] >= 1 for kind in KINDS), result.kinds()
    assert sum(result.sent.values()) == sum(result.delivered.values()) > 3 * 20 * 50
    assert sum(result.copies.values()) > sum(result.delivered.values())  # replays happened
