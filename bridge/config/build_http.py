"""Builds what surrounds a source's session: its HTTP steps, signatures and JSON Web Tokens,
with their keys checked now (never quoted) rather than at the first render."""

from __future__ import annotations

from typing import Any

from bridge.config.collect import Collector
from bridge.config.durations import parse_duration
from bridge.config.http_specs import HttpStep, JwtSpec, SignSpec
from bridge.config.keypaths import KeyPath
from bridge.upstream.signing import decode_key
from bridge.upstream.tokens import key_problem

_BODIES = ("json", "form", "body")


def build_http(raw: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """The ``SourceConfig`` fields ``http``, ``sign`` and ``jwt`` of one source."""
    steps = raw.get("http", [])
    return {
        "http": tuple(_step(s, (*path, "http", i), c) for i, s in enumerate(steps)),
        "sign": tuple(_sign(n, s, (*path, "sign", n), c) for n, s in raw.get("sign", {}).items()),
        "jwt": tuple(_jwt(n, j, (*path, "jwt", n), c) for n, j in raw.get("jwt", {}).items()),
    }


def _step(raw: dict[str, Any], where: KeyPath, c: Collector) -> HttpStep:
    on, _, every = str(raw.get("on", "connect")).partition(" ")
    seconds = 0.0
    if on == "every":
        try:
            seconds = parse_duration(every.strip())
        except ValueError as exc:
            c.add((*where, "on"), str(exc))
    kind = next((k for k in _BODIES if k in raw), "none")
    if raw.get("deliver") and on == "connect":
        c.add((*where, "deliver"), "a step that runs before connecting has no routes to deliver "
              "to yet; use on: subscribed (or every DURATION)")
    return HttpStep(
        name=raw["name"], url=c.template(raw["url"], (*where, "url")), on=on,  # type: ignore[arg-type]
        every=seconds, method=raw.get("method", "GET"),
        headers=c.template(raw.get("headers", {}), (*where, "headers")), body_kind=kind,  # type: ignore[arg-type]
        body=None if kind == "none" else c.template(raw[kind], (*where, kind)),
        expect_status=tuple(raw.get("expect_status", ())), on_error=raw.get("on_error", "log"),
        deliver=raw.get("deliver", False), **c.seconds(raw, where, {"timeout": "timeout"}),
    )


def _sign(name: str, raw: dict[str, Any], where: KeyPath, c: Collector) -> SignSpec:
    key = None
    if "hmac" in raw:
        try:
            key = decode_key(raw["key"], raw.get("key_encoding", "raw"))
        except ValueError as exc:
            c.add((*where, "key"), str(exc))
    return SignSpec(name, raw.get("hmac") or raw["hash"], c.template(raw["message"],
                    (*where, "message")), key, raw.get("encoding", "hex"))


def _jwt(name: str, raw: dict[str, Any], where: KeyPath, c: Collector) -> JwtSpec:
    if problem := key_problem(raw["algorithm"], raw["key"]):
        c.add((*where, "key"), problem)
    return JwtSpec(
        name, raw["algorithm"], raw["key"],
        headers=c.template(raw.get("headers", {}), (*where, "headers")),
        claims=c.template(raw.get("claims", {}), (*where, "claims")),
        **c.seconds(raw, where, {"ttl": "ttl"}),
    )
