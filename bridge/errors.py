"""The one exception tree of ws-bridge; third-party exceptions are translated into it at adapters.

    BridgeError
    ├── ConfigError                 every problem in a config file at once (exit code 78)
    ├── SourceError                 carries ``source``
    │   ├── ConnectFailed           TCP/TLS/DNS/timeout before the handshake completed
    │   │   └── HandshakeRejected   the HTTP upgrade got a non-101 ``status``
    │   ├── Rejected                the server refused: a ``reject`` matched (a frame or a
    │   │   │                           close code), or a preset's error frame (``stage``)
    │   │   └── AuthRejected        credentials refused (HTTP 401/403 or the auth ``reject``)
    │   ├── SessionTimeout          an auth, subscribe, ping, heartbeat or idle deadline (``stage``)
    │   ├── SequenceGap             a sequence gap under ``on_gap: reconnect``
    │   └── ConnectionLost          the socket closed or went half-open (``code``, ``reason``)
    │       └── MessageTooBig       a frame exceeded ``max_message_size``
    │           └── OperationTooBig an operation kept across frames (NATS) outgrew its bound
    └── SinkError                   carries ``sink`` (its branch: ``bridge.errors_sink``)
        ├── SinkUnavailable         cannot reach or open the target now (``kind``; retried)
        └── PublishRefused          the target refused one message (an ACL, a topic)
Messages are built in ``__str__`` from attributes, so no secret enters one by accident."""

from __future__ import annotations

from dataclasses import dataclass, field


class BridgeError(Exception):
    """Base class of every error ws-bridge raises on purpose."""

@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, at FILE:LINE:COL and a dotted key path."""
    file: str
    line: int
    column: int
    path: str
    message: str
    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path or '(top level)'}: {self.message}"

@dataclass
class ConfigError(BridgeError):
    """The config is invalid; ``issues`` holds every problem found, not just the first."""
    issues: list[ConfigIssue] = field(default_factory=list)
    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)

class SourceError(BridgeError):
    """A problem with one upstream WebSocket source."""
    def __init__(self, source: str, detail: str = "") -> None:
        super().__init__(source, detail)
        self.source, self.detail = source, detail
    def __str__(self) -> str:
        return f"source {self.source!r}: {self.detail or type(self).__name__}"

class ConnectFailed(SourceError):
    """The connection could not be opened (TCP, TLS, DNS, a timeout or a proxy)."""

class HandshakeRejected(ConnectFailed):
    """The server answered the upgrade with an HTTP error status."""
    def __init__(self, source: str, status: int, detail: str = "") -> None:
        super().__init__(source, detail or f"handshake rejected with HTTP {status}")
        self.status = status

class Rejected(SourceError):
    """The server refused, with its reason in ``detail``: a ``reject`` pattern matched a frame
    or a close code, or a preset saw its protocol's error frame (retried with backoff)."""

class AuthRejected(Rejected):
    """The server refused the credentials (retried with backoff, reported as a rejection)."""

class SessionTimeout(SourceError):
    """A session deadline passed: ``stage`` is auth, subscribe, heartbeat or idle."""
    def __init__(self, source: str, stage: str, detail: str = "") -> None:
        super().__init__(source, detail or f"{stage} timed out")
        self.stage = stage

class ConnectionLost(SourceError):
    """The connection closed, cleanly or not; ``code`` is None when no close frame arrived."""
    def __init__(self, source: str, code: int | None = None, reason: str = "") -> None:
        why = f"connection closed (code {code}{', ' + reason if reason else ''})"
        super().__init__(source, why if code is not None else "connection lost")
        self.code, self.reason = code, reason

class SequenceGap(SourceError):
    """A sequence gap under ``on_gap: reconnect``: the connection is dropped and re-opened."""

class MessageTooBig(ConnectionLost):
    """A frame exceeded ``max_message_size``; the connection is dropped and re-opened."""

class OperationTooBig(MessageTooBig):
    """A stream protocol's operation (NATS) kept across frames outgrew its bound (``detail``);
    its connection is renewed, and the next one's stream starts empty."""
    def __init__(self, source: str, detail: str) -> None:
        SourceError.__init__(self, source, detail)
        self.code, self.reason = None, detail
