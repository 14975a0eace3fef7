"""Builds a source's upstream-bound settings (publish, rpc, rate_limit, outbox) from YAML data."""

from __future__ import annotations

from typing import Any

from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath
from bridge.config.outbound import OutboxSpec, PublishSpec, RateLimitSpec, RpcSpec


def build_outbound(raw: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """The ``SourceConfig`` fields for ``publish``, ``rpc``, ``rate_limit`` and ``outbox``."""
    out: dict[str, Any] = {}
    entries = raw.get("publish", [])
    out["publish"] = tuple(
        PublishSpec(p["from"]["sink"], p["from"]["topic"],
                    c.template(p["send"], (*path, "publish", i, "send")))
        for i, p in enumerate(entries)
    )
    if (rpc := raw.get("rpc")) is not None:
        where = (*path, "rpc")
        out["rpc"] = RpcSpec(
            rpc.get("sink"), c.template(rpc["send"], (*where, "send")),
            id_field=rpc.get("id_field", "id"), match=c.pattern(rpc, "match", where),
            error=c.pattern(rpc, "error", where), **c.seconds(rpc, where, {"timeout": "timeout"}),
        )
    if (limit := raw.get("rate_limit")) is not None:
        per = c.seconds(limit, (*path, "rate_limit"), {"per": "per"})
        out["rate_limit"] = RateLimitSpec(limit["messages"], **per)
    if (box := raw.get("outbox")) is not None:
        age = c.seconds(box, (*path, "outbox"), {"max_age": "max_age"})
        out["outbox"] = OutboxSpec(box.get("max_messages", 1000), **age)
    return out
