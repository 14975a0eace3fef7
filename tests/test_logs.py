"""Log lines as journald, a terminal and a log shipper see them, with secrets masked."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bridge import logs
from bridge.logs import add_secrets, setup_logging


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no JOURNAL_STREAM, no known secrets, and leaves "bridge" as it was."""
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setattr(logs, "_redactor", logs.RedactSecrets())
    root = logging.getLogger("bridge")
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def journal_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> io.TextIOWrapper:
    """A stream that JOURNAL_STREAM names, as systemd does when stderr goes to the journal."""
    stream = (tmp_path / "journal").open("w+", encoding="utf-8")
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return stream


def written(stream: io.TextIOBase) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def boom(detail: str) -> None:
    raise RuntimeError(f"upstream said: {detail}")


def test_journald_lines_have_priority_prefix_and_no_timestamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with journal_file(tmp_path, monkeypatch) as stream:
        setup_logging("debug", stream=stream)
        log = logging.getLogger("bridge.upstream")
        log.debug("source %s: resolving", "a")
        log.info("source %s: connected", "a")
        log.warning("source %s: slow", "a")
        log.error("source %s: rejected", "a")
        log.critical("giving up")
        assert written(stream) == [
            "<7>bridge.upstream: source a: resolving",
            "<6>bridge.upstream: source a: connected",
            "<4>bridge.upstream: source a: slow",
            "<3>bridge.upstream: source a: rejected",
            "<2>bridge.upstream: giving up",
        ]


def test_journald_prefixes_every_line_of_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with journal_file(tmp_path, monkeypatch) as stream:
        setup_logging(stream=stream)
        try:
            boom("nope")
        except RuntimeError:
            logging.getLogger("bridge.sinks").exception("sink %s: failed", "mqtt")
        lines = written(stream)
        assert lines[0] == "<3>bridge.sinks: sink mqtt: failed"
        assert lines[1] == "<3>Traceback (most recent call last):"
        assert lines[-1] == "<3>RuntimeError: upstream said: nope"
        assert all(line.startswith("<3>") for line in lines)


def test_text_with_iso_timestamps_when_stderr_is_not_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JOURNAL_STREAM inherited from a service, but this stream is a different file.
    journal_file(tmp_path, monkeypatch).close()
    with (tmp_path / "elsewhere").open("w+", encoding="utf-8") as stream:
        setup_logging("info", stream=stream)
        logging.getLogger("bridge.cli").info("reloaded %d sources", 3)
        logging.getLogger("bridge.cli").debug("not shown at info")
        [line] = written(stream)
    stamp, level, rest = line.split(" ", 2)
    assert datetime.fromisoformat(stamp).tzinfo is not None
    assert (level, rest) == ("INFO", "bridge.cli: reloaded 3 sources")


def test_default_output_is_stderr_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging()
    logging.getLogger("bridge.cli").warning("config %s has 2 errors", "x.yaml")
    err = capsys.readouterr().err
    assert re.fullmatch(r"\S+ WARNING bridge\.cli: config x\.yaml has 2 errors\n", err)


def test_json_gives_one_object_per_line_with_source() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream=stream)
    log = logging.getLogger("bridge.upstream")
    logging.LoggerAdapter(log, {"source": "binance"}).info("source %s: connected", "binance")
    try:
        boom("line one\nline two")
    except RuntimeError:
        log.exception("source %s: closed", "kraken")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert datetime.fromisoformat(first.pop("ts")).tzinfo is not None
    assert first == {
        "level": "info",
        "logger": "bridge.upstream",
        "message": "source binance: connected",
        "source": "binance",
    }
    assert second["level"] == "error"
    assert second["message"] == "source kraken: closed"
    assert "source" not in second
    assert second["exc"].endswith("RuntimeError: upstream said: line one\nline two")


def test_json_is_used_even_under_journald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with journal_file(tmp_path, monkeypatch) as stream:
        setup_logging(fmt="json", stream=stream)
        logging.getLogger("bridge").info("up")
        [line] = written(stream)
    assert json.loads(line)["message"] == "up"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_masked_in_message_args_and_traceback(fmt: str) -> None:
    stream = io.StringIO()
    setup_logging("debug", fmt, secrets=["hunter2-token", ""])
    # setup_logging again with a stream: the secrets given earlier stay known.
    setup_logging("debug", fmt, stream=stream)
    log = logging.getLogger("bridge.upstream")
    log.info("auth header is Bearer hunter2-token")
    log.info("sending %s to %s", {"op": "auth", "key": "hunter2-token"}, "wss://x")
    try:
        boom("bad key hunter2-token")
    except RuntimeError:
        log.exception("source %s: auth failed", "a")
    out = stream.getvalue()
    assert "hunter2" not in out
    assert "Bearer ***" in out
    assert "'key': '***'" in out
    # Masked both in the exception message and in the source line the traceback quotes.
    assert "upstream said: bad key ***" in out
    assert 'boom(\\"bad key ***\\")' in out if fmt == "json" else 'boom("bad key ***")' in out


def test_secrets_added_on_reload_are_masked_and_old_ones_stay() -> None:
    stream = io.StringIO()
    setup_logging(secrets=["old-password"], stream=stream)
    log = logging.getLogger("bridge.supervisor")
    log.info("new value new-password")
    add_secrets(["new-password", "new-password-longer"])
    log.info("values %s %s %s", "old-password", "new-password", "new-password-longer")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("new value new-password")
    # The longer secret is masked whole, not as "***-longer".
    assert lines[1].endswith("values *** *** ***")


def test_calling_setup_again_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging(stream=first)
    setup_logging(stream=second)
    logging.getLogger("bridge").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


def test_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        setup_logging("loud")
    with pytest.raises(ValueError, match="log format"):
        setup_logging("info", "xml")
