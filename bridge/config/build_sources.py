"""Builds each typed source config from schema-valid YAML data, with the defaults beneath it."""

from __future__ import annotations

from typing import Any

from bridge.config.build_outbound import build_outbound
from bridge.config.collect import Collector, parse_size, pattern, tls
from bridge.config.explain import KeyPath
from bridge.config.model import AuthSpec, HeartbeatSpec, ReplySpec, RouteSpec, SourceConfig, Step
from bridge.config.specs import DEDUP_WINDOW, DedupSpec, SequenceSpec
from bridge.routing.pattern import Pattern

_TIMING = {"connect_timeout": "connect_timeout", "idle_timeout": "idle_timeout"}
_PING = {"interval": "ping_interval", "timeout": "ping_timeout"}
_TIMEOUT = {"timeout": "timeout"}
_STEP_TIMES = {**_TIMEOUT, "expect_every": "expect_every"}
_OPTIONS = ("compression", "proxy", "on_invalid", "allow_insecure")


def build_source(
    raw: dict[str, Any], defaults: dict[str, Any], path: KeyPath, c: Collector
) -> SourceConfig:
    """One source, with ``defaults`` beneath it (``reconnect`` and ``ping`` merged key by key)."""
    merged = {**defaults, **raw}
    for key in ("reconnect", "ping"):
        merged[key] = {**defaults.get(key, {}), **raw.get(key, {})}
    if raw.get("tls") and raw["url"].startswith("ws://"):
        c.add((*path, "tls"), "tls is set but the url is ws://; use wss:// for TLS")
    options: dict[str, Any] = {k: raw[k] for k in _OPTIONS if k in raw}
    if "max_message_size" in raw:
        options["max_message_size"] = parse_size(raw["max_message_size"])
    options |= c.seconds(merged, path, _TIMING) | c.seconds(merged["ping"], (*path, "ping"), _PING)

    def step(spec: dict[str, Any], where: KeyPath) -> Step:
        send = c.template(spec["send"], (*where, "send"))
        expect, reject = pattern(spec.get("expect")), pattern(spec.get("reject"))
        when = pattern(spec.get("when"))
        return Step(send, expect, reject, when=when, **c.seconds(spec, where, _STEP_TIMES))

    def steps(key: str) -> tuple[Step, ...]:
        return tuple(step(s, (*path, key, i)) for i, s in enumerate(raw.get(key, [])))

    def route(r: dict[str, Any], where: KeyPath) -> RouteSpec:
        topic, payload = r.get("topic"), r.get("payload")
        return RouteSpec(
            sink=r["sink"],
            when=pattern(r.get("when")),
            topic=None if topic is None else c.template(topic, (*where, "topic")),
            payload=None if "payload" not in r else c.template(payload, (*where, "payload")),
            qos=r.get("qos"),
            retain=r.get("retain"),
        )

    auth, beat = raw.get("auth"), raw.get("heartbeat")
    return SourceConfig(
        name=raw["name"],
        url=raw["url"],
        headers=dict(raw.get("headers", {})),
        subprotocols=tuple(raw.get("subprotocols", ())),
        tls=tls(raw.get("tls")),
        reconnect=c.backoff(merged["reconnect"], (*path, "reconnect")),
        auth=None if auth is None else AuthSpec(
            send=None if auth.get("send") is None
            else c.template(auth["send"], (*path, "auth", "send")),
            await_=pattern(auth.get("await")),
            expect=pattern(auth.get("expect")),
            reject=pattern(auth.get("reject")),
            **c.seconds(auth, (*path, "auth"), _TIMEOUT),
        ),
        subscribe=steps("subscribe"),
        unsubscribe=steps("unsubscribe"),
        heartbeat=None if beat is None else HeartbeatSpec(
            send=c.template(beat["send"], (*path, "heartbeat", "send")),
            expect=pattern(beat.get("expect")),
            **c.seconds(beat, (*path, "heartbeat"), {"interval": "interval", **_TIMEOUT}),
        ),
        replies=tuple(
            ReplySpec(Pattern(r["when"]), c.template(r["send"], (*path, "replies", i, "send")))
            for i, r in enumerate(raw.get("replies", []))
        ),
        routes=tuple(route(r, (*path, "routes", i)) for i, r in enumerate(raw.get("routes", []))),
        **options,
        **_recovery(raw, path, c),
        **build_outbound(raw, path, c),
    )


def _recovery(raw: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """``dedup`` and ``sequence``, when set."""
    out: dict[str, Any] = {}
    if (dedup := raw.get("dedup")) is not None:
        key = c.template(dedup["key"], (*path, "dedup", "key"))
        out["dedup"] = DedupSpec(key, dedup.get("window", DEDUP_WINDOW))
    if (seq := raw.get("sequence")) is not None:
        per = None if "per" not in seq else c.template(seq["per"], (*path, "sequence", "per"))
        key = c.template(seq["key"], (*path, "sequence", "key"))
        out["sequence"] = SequenceSpec(key, per, seq.get("on_gap", "log"))
    return out
