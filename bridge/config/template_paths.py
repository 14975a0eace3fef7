"""Which strings of a config are run-time ``{placeholder}`` templates (by their key path), and
how a value is written so that it is never read as one."""

from __future__ import annotations

from bridge.config.keypaths import KeyPath

_SOURCE_TEMPLATES = {"auth", "subscribe", "unsubscribe", "heartbeat", "replies", "publish", "rpc"}
_ROUTE_TEMPLATES = [["routes", "topic"], ["routes", "payload"], ["routes", "each"],
                    ["routes", "on_change", "key"], ["routes", "on_change", "value"],
                    ["routes", "throttle", "key"]]
# Rendered before every attempt or per request: the URL, the headers, the HTTP steps (but
# their names and settings), what is signed, a JWT's headers and claims, a templated interval
_ATTEMPT = frozenset({"url", "headers", "http"})
_STEP_SETTINGS = frozenset({"name", "on", "method", "timeout", "on_error"})
_NAMED = frozenset({("sign", "message"), ("jwt", "headers"), ("jwt", "claims")})


def is_template_path(path: KeyPath) -> bool:
    """Whether the string at ``path`` is compiled as a run-time ``{placeholder}`` template."""
    keys = [step for step in path[2:] if isinstance(step, str)]
    if path[:1] == ("sources",):
        if keys[:1] and keys[0] in _ATTEMPT:
            return keys[0] != "http" or len(keys) < 2 or keys[1] not in _STEP_SETTINGS
        if tuple(keys[0:3:2]) in _NAMED or keys == ["heartbeat", "interval"]:
            return True
        if keys[:2] == ["capture", "set"]:
            return True
        return keys[:2] in _ROUTE_TEMPLATES or keys[:3] in _ROUTE_TEMPLATES or (
            keys[:1] != [] and keys[0] in _SOURCE_TEMPLATES and keys[1:2] == ["send"]
        )
    return path[:1] == ("sinks",) and (
        keys in (["path"], ["client_id"]) or keys[:2] == ["properties", "user"]
    )


def literal(value: str) -> str:
    """``value`` as literal template text: a secret with braces is never read as a placeholder."""
    return value.replace("{", "{{").replace("}", "}}")
