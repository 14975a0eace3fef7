"""The file sink's pure parts: when to rotate, rotated names (``app.jsonl.20261127T130000Z``,
then ``.1``, ``.2`` on collision, ``.gz`` once compressed), and its open-file record.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import FileIO
from typing import Literal

Rotate = Literal["hourly", "daily"]
_SECONDS = {"hourly": 3600, "daily": 86400}
_SUFFIX = re.compile(r"\.(\d{8}T\d{6}Z)(?:\.(\d+))?(?:\.gz)?")


@dataclass(eq=False)
class OpenFile:
    """One file the sink appends to; ``period`` is the UTC hour or day its lines belong to."""

    path: str
    file: FileIO
    size: int
    period: float | None


def why(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: the reason a user can act on."""
    code = errno.errorcode.get(exc.errno or 0)
    return f"{exc.strerror or exc} ({code})" if code else str(exc.strerror or exc)


def period_start(t: float, rotate: Rotate | None) -> float | None:
    """The UTC start of the hour or day holding ``t``; None when time rotation is off."""
    if rotate is None:
        return None
    step = _SECONDS[rotate]
    return float(t // step * step)


def due_by_time(period: float | None, now: float, rotate: Rotate | None) -> bool:
    """True when the file's period has ended by ``now``."""
    return period is not None and period_start(now, rotate) != period


def size_chunks(size: int, lines: list[bytes], max_bytes: int) -> list[list[bytes]]:
    """``lines`` cut where a file of ``size`` bytes must rotate: the first chunk stays in it."""
    chunks: list[list[bytes]] = [[]]
    for line in lines:
        if max_bytes and size and size + len(line) > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line)
    return chunks


def rotated_name(path: str, t: float, taken: Callable[[str], bool]) -> str:
    """The first free rotated name for ``path`` at ``t``; ``taken`` says whether a name exists."""
    base = f"{path}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(t))}"
    candidate, n = base, 0
    while taken(candidate) or taken(candidate + ".gz"):
        n += 1
        candidate = f"{base}.{n}"
    return candidate


def rotated_key(base_name: str, name: str) -> tuple[str, int] | None:
    """Sort key (stamp, collision number) when ``name`` is a rotated file of ``base_name``."""
    if not name.startswith(base_name):
        return None
    m = _SUFFIX.fullmatch(name, len(base_name))
    return (m.group(1), int(m.group(2) or 0)) if m else None


def expired(base_name: str, names: Iterable[str], keep: int) -> list[str]:
    """The rotated files of ``base_name`` older than the newest ``keep`` (none when keep is 0)."""
    if keep <= 0:
        return []
    found = sorted((key, name) for name in names if (key := rotated_key(base_name, name)))
    return [name for _, name in found[: max(0, len(found) - keep)]]
