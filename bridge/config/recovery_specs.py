"""The recovery checks of a source, typed and built: ``dedup`` (repeats dropped) and
``sequence`` (gaps in a numbered stream found)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath
from bridge.routing.template import Template

DEDUP_WINDOW = 10_000


@dataclass(frozen=True, slots=True)
class DedupSpec:
    """Drop a message whose rendered ``key`` is among the last ``window`` keys seen."""
    key: Template
    window: int = DEDUP_WINDOW


OnGap = Literal["log", "resubscribe", "reconnect"]


@dataclass(frozen=True, slots=True)
class SequenceSpec:
    """Expect ``key`` to grow by one per message within each ``per`` stream (one without it)."""
    key: Template
    per: Template | None = None
    on_gap: OnGap = "log"


def build_recovery(raw: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """The ``SourceConfig`` fields ``dedup`` and ``sequence``, when set."""
    out: dict[str, Any] = {}
    if (dedup := raw.get("dedup")) is not None:
        key = c.template(dedup["key"], (*path, "dedup", "key"))
        out["dedup"] = DedupSpec(key, dedup.get("window", DEDUP_WINDOW))
    if (seq := raw.get("sequence")) is not None:
        per = None if "per" not in seq else c.template(seq["per"], (*path, "sequence", "per"))
        key = c.template(seq["key"], (*path, "sequence", "key"))
        out["sequence"] = SequenceSpec(key, per, seq.get("on_gap", "log"))
    return out
