"""Builds what a source's session engine follows: auth, subscribe steps, heartbeat, replies,
and (through recovery_specs and build_state) the recovery checks and the parts that carry
state. The session rules are one concept, apart from how the source connects and where its
messages go."""

from __future__ import annotations

from typing import Any

from bridge.config.build_state import build_state
from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath
from bridge.config.pooling import EACH_PLACEHOLDERS
from bridge.config.recovery_specs import build_recovery
from bridge.config.specs import AuthSpec, HeartbeatSpec, ReplySpec, Step

_TIMEOUT = {"timeout": "timeout"}
_STEP_TIMES = {**_TIMEOUT, "expect_every": "expect_every"}


def build_session(raw: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """The ``SourceConfig`` fields the session engine reads, from one source's YAML data."""
    auth, beat = raw.get("auth"), raw.get("heartbeat")
    return {
        "auth": None if auth is None else _auth(auth, (*path, "auth"), c),
        "subscribe": _steps(raw, "subscribe", path, c),
        "unsubscribe": _steps(raw, "unsubscribe", path, c),
        "heartbeat": None if beat is None else _heartbeat(beat, (*path, "heartbeat"), c),
        "replies": tuple(
            ReplySpec(c.match(r["when"], (*path, "replies", i, "when")),
                      c.template(r["send"], (*path, "replies", i, "send")))
            for i, r in enumerate(raw.get("replies", []))
        ),
        **build_recovery(raw, path, c),
        **build_state(raw, path, c),
    }


def _heartbeat(beat: dict[str, Any], where: KeyPath, c: Collector) -> HeartbeatSpec:
    """A heartbeat; an interval with a placeholder is rendered when a connection opens."""
    every = beat["interval"] if "{" in str(beat["interval"]) else None
    times = {"interval": "interval", **_TIMEOUT} if every is None else _TIMEOUT
    return HeartbeatSpec(
        send=c.template(beat["send"], (*where, "send")),
        expect=c.pattern(beat, "expect", where),
        interval_from=None if every is None else c.template(every, (*where, "interval")),
        **{"interval": 0.0, **c.seconds(beat, where, times)},
    )


def _auth(auth: dict[str, Any], where: KeyPath, c: Collector) -> AuthSpec:
    send = auth.get("send")
    return AuthSpec(
        send=None if send is None else c.template(send, (*where, "send")),
        await_=c.pattern(auth, "await", where),
        expect=c.pattern(auth, "expect", where),
        reject=c.pattern(auth, "reject", where),
        **c.seconds(auth, where, _TIMEOUT),
    )


def _steps(raw: dict[str, Any], key: str, path: KeyPath, c: Collector) -> tuple[Step, ...]:
    """The ``subscribe`` or ``unsubscribe`` steps, in order; an unsubscribe ``each:
    subscribe`` goes in the batches of the subscribe entry with ``each``."""
    batch = next((s.get("batch", 1) for s in raw.get("subscribe", []) if _each(s)), 1)
    return tuple(_step(spec, (*path, key, i), c, batch)
                 for i, spec in enumerate(raw.get(key, [])))


def _each(spec: dict[str, Any]) -> bool:
    return "each" in spec or "each_file" in spec


def _step(spec: dict[str, Any], where: KeyPath, c: Collector, batch: int) -> Step:
    each = _each(spec)
    return Step(
        c.template(spec["send"], (*where, "send"), EACH_PLACEHOLDERS if each else None),
        c.pattern(spec, "expect", where),
        c.pattern(spec, "reject", where),
        when=c.pattern(spec, "when", where),
        deliver=spec.get("deliver", False),
        each=each,
        batch=spec.get("batch", batch),
        **c.seconds(spec, where, _STEP_TIMES),
    )
