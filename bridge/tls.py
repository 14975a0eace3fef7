"""The one TLS client context builder, for upstream ``wss://`` connections and MQTT brokers.

Organisms build the context and hand it to their adapter, so both sides verify, present client
certificates and switch verification off in exactly the same way."""

from __future__ import annotations

import ssl

from bridge.config.specs import TLSConfig


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
