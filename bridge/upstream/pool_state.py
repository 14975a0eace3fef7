"""A pool's one state, from the states of its connections (what the state topic and readiness
show for the source; ``ws-bridge status`` and metrics show each connection besides)."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.upstream.state import ConnState

# The least advanced live state speaks for the pool: it is not CONNECTED until all are.
_ORDER = (ConnState.RECONNECTING, ConnState.CONNECTING, ConnState.AUTHENTICATING,
          ConnState.SUBSCRIBING, ConnState.CONNECTED)
_ENDED = (ConnState.FAILED, ConnState.STOPPED)


def pool_state(states: Iterable[ConnState]) -> ConnState:
    """CONNECTED once every live connection is (a pool with none carries nothing: CONNECTED
    too); FAILED once every connection has given up, STOPPED once all are done."""
    seen = list(states)
    live = [state for state in seen if state not in _ENDED]
    if live:
        return min(live, key=_ORDER.index)
    if not seen:
        return ConnState.CONNECTED
    return ConnState.FAILED if ConnState.FAILED in seen else ConnState.STOPPED


def items_text(up: int, connections: int, items_up: int, items: int) -> str:
    """``48/50 connected, 47,912/48,000 items``: the status of a pool in one cell."""
    return f"{up}/{connections} connected, {items_up:,}/{items:,} items"
