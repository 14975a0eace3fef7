"""Secrets masked as ``***`` in any text shown: log lines, config errors, ``check``'s summary.

A value shorter than ``SHORTEST`` characters is never replaced: masking a password "1" would
mask every 1 in unrelated text (counts, ports, addresses), and hide the config, not a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SHORTEST = 4
MASK = "***"


def pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """What matches any secret of ``SHORTEST`` characters or more, longest first (so a secret
    that contains another is masked whole); None when there is none."""
    ordered = sorted({s for s in secrets if len(s) >= SHORTEST}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``; longer secrets win over their substrings."""
    found = pattern(secrets)
    return found.sub(MASK, text) if found else text
