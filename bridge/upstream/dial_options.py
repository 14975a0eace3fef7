"""What a source's config asks of websockets' ``connect``: its keyword options, worked out
without a socket (the adapter, ``bridge.upstream.connection``, passes them on)."""

from __future__ import annotations

import urllib.parse
from typing import Any, Final

from bridge.config.model import SourceConfig
from bridge.upstream.urls import proxy_for

# Waiting longer for a peer's close frame gains nothing: the session reconnects either way.
MAX_CLOSE_TIMEOUT: Final = 5.0


def connect_options(cfg: SourceConfig, tls: Any, url: str,
                    headers: dict[str, str] | None) -> dict[str, Any]:
    """``connect``'s options for ``url``; ``tls``: the ``ssl.SSLContext`` for a ``wss://`` URL
    (None: websockets' default), ``headers``: as rendered for this attempt (None: the
    config's)."""
    ping_interval = cfg.ping_interval if cfg.ping_interval > 0 else None
    ping_timeout = cfg.ping_timeout if cfg.ping_timeout > 0 else None
    options: dict[str, Any] = {
        "additional_headers": dict(cfg.headers if headers is None else headers),
        "subprotocols": list(cfg.subprotocols) or None,
        "compression": "deflate" if cfg.compression else None,
        "open_timeout": cfg.connect_timeout if cfg.connect_timeout > 0 else None,
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        # A half-open peer never answers our close frame; bound the wait by the ping timeout.
        "close_timeout": min(ping_timeout or MAX_CLOSE_TIMEOUT, MAX_CLOSE_TIMEOUT),
        "max_size": cfg.max_message_size if cfg.max_message_size > 0 else None,
        "proxy": proxy_for(url, cfg.proxy),
    }
    if tls is not None and urllib.parse.urlsplit(url).scheme == "wss":
        options["ssl"] = tls
    return options
