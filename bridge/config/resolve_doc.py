"""Load-time placeholders resolved across a whole config document, and which of the values put
in are secrets: every ``${file:}`` value, a value in a URL's query, anything in the auth message
or an HTTP step's body, and (found by ``find_secrets`` once resolved) a value in a secret place.
An ``${env:}`` port, host or count is config, shown as it is."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.config import placeholders
from bridge.config.credentials import find_secrets
from bridge.config.keypaths import KeyPath, Report
from bridge.config.template_paths import is_template_path, literal

_BODIES = {("json",), ("form",), ("body",)}


def in_secret_body(path: KeyPath) -> bool:
    """Whether every value placed at ``path`` is a secret, whatever its key's name: anything in
    the auth message a source sends, or in the body of an HTTP step (a token request)."""
    keys = path[2:] if path[:1] == ("sources",) else ()
    return keys[:1] == ("auth",) or (keys[:1] == ("http",) and keys[2:3] in _BODIES)


def resolve_document(
    doc: Any, nodes: list[tuple[KeyPath, Any]], env: Mapping[str, str],
    read: Callable[[str], str], *, report: Report, failed: set[KeyPath],
) -> frozenset[str]:
    """Resolve ``${env:}``/``${file:}`` in every string value in place; returns the secrets.

    An unresolvable placeholder is reported at its key path and added to ``failed``."""
    secrets: set[str] = set()
    done: set[int] = set()  # an aliased node is reached twice but resolved once
    for path, node in nodes:
        if id(node) in done:
            continue
        done.add(id(node))
        for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(value, str) and "${" in value:
                where = (*path, key)
                # In a run-time template, a secret's braces must stay literal text.
                quote: Callable[[str], str] | None = literal if is_template_path(where) else None
                try:
                    node[key], found = placeholders.resolve(
                        value, env, read, quote, secret=in_secret_body(where))
                    secrets |= found
                except placeholders.PlaceholderError as exc:
                    report(where, str(exc))
                    failed.add(where)
    # Now resolved, the secret places hold the ${env:} values put there (not failed placeholders)
    placed = {s for s in find_secrets(doc) if "${" not in s}
    return frozenset(secrets | placed | {_unquoted(s) for s in placed})


def _unquoted(text: str) -> str:
    """A secret as written in a run-time template (``literal``) and as it is sent."""
    return text.replace("{{", "{").replace("}}", "}")
