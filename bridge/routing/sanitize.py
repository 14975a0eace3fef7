"""Sanitisers for placeholder values inside names: MQTT topics and file paths. Pure."""

from __future__ import annotations

_TOPIC_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})
_PATH_UNSAFE = str.maketrans({"/": "_", "\\": "_", "\0": "_"})


def sanitize_topic_value(value: str) -> str:
    """A placeholder's value inside an MQTT topic: it can add no level and no wildcard."""
    if "/" in value or "+" in value or "#" in value or "\0" in value:  # rare: translate is slow
        return value.translate(_TOPIC_UNSAFE)
    return value


def sanitize_path_value(value: str) -> str:
    """A placeholder's value inside a file path: one plain name, never a way up or out."""
    clean = value.translate(_PATH_UNSAFE).replace("..", "__")
    return "_" if clean in ("", ".") else clean
