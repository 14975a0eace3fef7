"""What a sink says retained, as part of every sink's contract: each source's state and
availability, its own availability, and what others ask it to keep (Home Assistant discovery).

Only the MQTT sink publishes any of it; the others record nothing. Kept apart from
``bridge.sinks.base`` because it is its own concept: what stays on a broker after the bridge
has said it, and must be said again, or deleted, when the bridge changes."""

from __future__ import annotations

from typing import Protocol


class Retaining(Protocol):
    """What a sink keeps retained about the bridge and its sources."""

    def source_state(self, source: str, state: str) -> None:
        """A source's connection state changed (published by sinks that record it)."""

    def source_removed(self, source: str) -> None:
        """A reload removed the source: sinks that recorded its state delete what they
        published of it (a plain stop leaves its last state, ``stopped``, instead)."""

    def retain(self, topic: str, payload: str) -> None:
        """Keep ``payload`` retained on ``topic``, again after every reconnect; empty deletes
        it (Home Assistant discovery). Sinks without retained messages ignore it."""

    def state_topics(self) -> set[str]:
        """The topics of its availability and of each source's state and availability it
        knows: a successor with another ``topic_prefix`` or availability topic deletes the
        ones it does not use. None for sinks that record no state."""
