"""What the session asks its driver about a successor connection (``rollover: overlap``): run
one beside the live connection, and let it take over. Part of the session's ``Action``s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Rollover:
    """Open a successor connection beside the live one and drive ``leg`` (a ``Successor``)
    over it: its own ``start``, ``screen``, ``tick``, ``deadline`` and ``lost``."""
    leg: Any


@dataclass(frozen=True, slots=True)
class Handover:
    """The successor is subscribed: call its ``handover``, then close the old connection and
    go on with the successor's as the live one."""
