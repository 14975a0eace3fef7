"""Sizes as users write them (``65536``, ``512KiB``, ``1MiB``, ``100MB``), parsed to bytes."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_UNITS = {"B": 1, "KB": 10**3, "KiB": 2**10, "MB": 10**6, "MiB": 2**20, "GB": 10**9, "GiB": 2**30}
PATTERN = r"^\s*\d+(\.\d+)?\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$"


def parse_size(value: int | float | str) -> int:
    """Bytes for ``1048576``, ``"1MiB"`` or ``"100MB"`` (``1024.0`` is an integer to JSON)."""
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (write e.g. 65536, 512KiB, 1MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2) or "B"])
