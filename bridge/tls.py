"""The one TLS client context builder, for upstream ``wss://`` connections and MQTT brokers.

Organisms build the context and hand it to their adapter, so both sides verify, present client
certificates and switch verification off in exactly the same way."""

from __future__ import annotations

import ssl
import urllib.parse

from bridge.config.model import SourceConfig
from bridge.config.specs import TLSConfig
from bridge.errors import ConnectFailed
from bridge.upstream.urls import safe_url


def client_context(tls: TLSConfig) -> ssl.SSLContext:
    """A client context trusting ``tls.ca_file`` (else the system store), presenting
    ``tls.cert_file``/``tls.key_file`` when set; ``verify: false`` checks neither the chain
    nor the host name."""
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if not tls.verify:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def source_context(cfg: SourceConfig, url: str | None = None) -> ssl.SSLContext | None:
    """A source's context for a ``wss://`` or ``https://`` URL (its own by default; None for
    plain ones); an unreadable certificate or key file is a failed connection attempt, retried
    like one."""
    url = cfg.url if url is None else url
    if urllib.parse.urlsplit(url).scheme not in ("wss", "https"):
        return None
    try:
        return client_context(cfg.tls)
    except OSError as exc:  # ssl.SSLError included
        raise ConnectFailed(cfg.name, f"{safe_url(url)}: TLS settings: {exc}") from exc
