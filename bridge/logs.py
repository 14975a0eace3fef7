"""Configure the "bridge" logger for a terminal, journald or a log shipper, and keep secrets out.

Under systemd (``$JOURNAL_STREAM`` names our stderr) journald adds the timestamp itself and reads
the ``<N>`` syslog priority prefix of each line; elsewhere lines carry an ISO timestamp, and
``json`` gives one object per line. Every record passes a redaction filter first, so a secret
reaches no output even when a caller logs it by mistake, in an argument or in a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import TextIO

from bridge.redaction import MASK, pattern

FORMATS = ("auto", "text", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}

# syslog(3) priorities, which journald reads from the start of each line.
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def _priority(levelno: int) -> int:
    return next((prio for threshold, prio in _PRIORITY if levelno >= threshold), 7)


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class RedactSecrets(logging.Filter):
    """Replaces every known secret with ``***`` in the formatted message and the traceback
    (but a value shorter than 4 characters, which would mask unrelated text)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secrets: Iterable[str]) -> None:
        """Add secrets; old ones stay, since they may still sit in memory or a queued message."""
        self._secrets.update(s for s in secrets if s)
        self._pattern = pattern(self._secrets)  # values under 4 characters are left alone

    def redact(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        # Merging the args first catches a secret passed as an argument, whatever its type.
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JournalFormatter(logging.Formatter):
    """``<6>bridge.area: message``; every line prefixed, since journald splits on newlines."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_priority(record.levelno)}>"
        text = f"{record.name}: {super().format(record)}"
        return "\n".join(prefix + line for line in text.splitlines())


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.123+02:00 INFO bridge.area: message`` for terminals and files."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{_timestamp(record)} {record.levelname} {record.name}: {super().format(record)}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and source/exc when present."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        source = getattr(record, "source", None)
        if source is not None:
            entry["source"] = str(source)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


_redactor = RedactSecrets()
_HANDLER_MARK = "_ws_bridge_handler"


def add_secrets(secrets: Iterable[str]) -> None:
    """Mask these values in every later log line too (a reload may bring new credentials)."""
    _redactor.add(secrets)


def _stderr_is_journal(stream: TextIO) -> bool:
    """True when ``$JOURNAL_STREAM`` ("device:inode") names this stream, as systemd documents."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return True  # a stream without a descriptor cannot be compared; trust the variable
    return expected == f"{st.st_dev}:{st.st_ino}"


def setup_logging(
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    *,
    stream: TextIO | None = None,
) -> logging.Logger:
    """Send the "bridge" logger tree to stderr (or ``stream``) in ``fmt``; safe to call again."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = sys.stderr if stream is None else stream
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    elif fmt == "auto" and _stderr_is_journal(out):
        formatter = JournalFormatter()
    else:
        formatter = TextFormatter()
    add_secrets(secrets)
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(_redactor)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger("bridge")
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level.lower()])
    # gmqtt logs every lost socket and retry at WARNING; the MQTT sink logs each state once.
    logging.getLogger("gmqtt").setLevel(logging.CRITICAL)
    # httpx logs every request's URL at INFO, and a URL may hold a token (a listenKey).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return root
