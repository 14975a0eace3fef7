"""Fault tests: an upstream killed every K messages; sent = delivered, repeats counted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bridge.config.load import load_config
from bridge.supervisor import Supervisor
from tests.support.daemon import eventually
from tests.support.upstream import Upstream, UpstreamConn

N, K = 300, 40  # messages in the feed; the upstream drops the connection after K of them


def replaying_feed(upstream: Upstream) -> list[int]:
    """Each connection replays the previous connection's messages (as exchanges replay recent
    history), sends K new ones, then is killed without a close frame; the last one stays."""
    sent: list[int] = []

    async def handler(conn: UpstreamConn) -> None:
        index = len(upstream.connections) - 1
        start, end = max(0, (index - 1) * K), min(N, (index + 1) * K)
        for n in range(start, end):
            await conn.send_json({"id": n, "price": n * 0.5})
            sent.append(n)
        if end < N:
            conn.kill()

    upstream.handler = handler
    return sent


async def test_an_upstream_killed_every_k_messages_loses_nothing_and_repeats_nothing(
    upstream: Upstream, tmp_path: Path
) -> None:
    sent = replaying_feed(upstream)
    out = tmp_path / "out.jsonl"
    path = tmp_path / "bridge.yaml"
    path.write_text(f"""
version: 1
sinks: {{out: {{type: file, path: "{out}", format: raw}}}}
sources:
  - name: feed
    url: {upstream.url}
    reconnect: {{initial_delay: 10ms, max_delay: 50ms}}
    dedup: {{key: "{{msg.id}}", window: 1000}}
    routes: [{{sink: out}}]
""")
    supervisor = Supervisor(load_config(path))
    running = asyncio.create_task(supervisor.run())
    try:
        async def all_written() -> list[str] | None:
            lines = out.read_text().splitlines() if out.exists() else []
            return lines if len(lines) >= N else None

        lines = await eventually(all_written, timeout=15.0, what=f"{N} lines in {out}")
    finally:
        supervisor.request_stop()
        assert await asyncio.wait_for(running, 20) == 0
    client = supervisor.sources["feed"].client
    assert [json.loads(line)["id"] for line in lines] == list(range(N))  # each once, in order
    stats = client.stats
    assert len(upstream.connections) == -(-N // K)
    # Every frame that reached the bridge was either delivered or dropped as a counted repeat.
    assert stats.received == N + stats.recovery["duplicate"]
    assert stats.recovery["duplicate"] > 0 and len(sent) >= stats.received
    assert sum(stats.reconnects.values()) == len(upstream.connections) - 1
