"""Pool configs: what `check` refuses, each at its key, and what a valid pool builds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config.load import load_config
from bridge.errors import ConfigError, ConfigIssue

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "binance-pool.yaml"


def source(body: str, url: str = "ws://127.0.0.1:1/ws") -> str:
    return textwrap.dedent("""\
        version: 1
        sinks: {out: {type: stdout}}
        sources:
          - name: feed
            url: "%s"
            routes: [{sink: out}]
        """) % url + textwrap.indent(textwrap.dedent(body), "    ")


def issues(tmp_path: Path, text: str) -> list[ConfigIssue]:
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return caught.value.issues


def messages(found: list[ConfigIssue]) -> dict[str, str]:
    return {issue.path: issue.message for issue in found}


SUBSCRIBE = """\
subscribe:
  - %s
    send: {method: SUBSCRIBE, params: "{items}", id: "{seq}"}
"""


def test_the_example_pool_config_builds_both_pools() -> None:
    config = load_config(EXAMPLE, env={})
    pooled, combined = config.sources
    assert pooled.pool is not None and pooled.pool.items[:2] == ("btcusdt@trade", "ethusdt@trade")
    assert (pooled.pool.per_connection, pooled.pool.max_connections) == (1000, 50)
    assert pooled.pool.connect_every == 1.0 and pooled.subscribe[0].batch == 100
    assert pooled.unsubscribe[0].each and pooled.unsubscribe[0].batch == 100
    assert combined.pool is not None and combined.pool.url_join == "/"


def test_check_refuses_an_empty_each(tmp_path: Path) -> None:
    found = messages(issues(tmp_path, source(SUBSCRIBE % "each: []")))
    assert "at least 1 item" in found["sources[0].subscribe[0].each"]


def test_check_refuses_duplicate_items(tmp_path: Path) -> None:
    found = messages(issues(tmp_path, source(SUBSCRIBE % "each: [a, b, a]")))
    assert "duplicate items: 'a'" in found["sources[0].subscribe[0].each"]


def test_check_refuses_items_in_a_url_without_a_pool(tmp_path: Path) -> None:
    found = messages(issues(tmp_path, source("", url="ws://127.0.0.1:1/s?streams={items}")))
    assert "needs `pool`" in found["sources[0].url"]


def test_check_refuses_more_items_than_the_pool_holds(tmp_path: Path) -> None:
    body = SUBSCRIBE % "each: [a, b, c, d, e]" + "pool: {per_connection: 2, max_connections: 2}\n"
    found = messages(issues(tmp_path, source(body)))
    assert "5 items do not fit" in found["sources[0].pool"]


def test_check_refuses_an_unreadable_each_file_with_its_path_and_reason(tmp_path: Path) -> None:
    missing = tmp_path / "streams.txt"
    found = messages(issues(tmp_path, source(SUBSCRIBE % f"each_file: {missing}")))
    assert found["sources[0].subscribe[0].each_file"] == (
        f"cannot read the items file {missing}: No such file or directory")


def test_an_each_file_lists_one_item_a_line_with_comments(tmp_path: Path) -> None:
    (tmp_path / "streams.txt").write_text("# majors\nbtcusdt@trade\n\nethusdt@trade  # eth\n")
    path = tmp_path / "bridge.yaml"
    path.write_text(source(SUBSCRIBE % "each_file: streams.txt"))  # beside the config
    pool = load_config(path, env={}).sources[0].pool
    assert pool is not None and pool.items == ("btcusdt@trade", "ethusdt@trade")
    assert pool.max_connections == 1  # no pool: one connection carries them all


def test_check_refuses_item_in_a_batch_and_items_given_twice(tmp_path: Path) -> None:
    body = """\
        subscribe:
          - each: [a, b]
            batch: 2
            send: {op: subscribe, symbol: "{item}"}
        pool: {per_connection: 5, each: [c]}
        """
    found = messages(issues(tmp_path, source(body, url="ws://127.0.0.1:1/{items}")))
    assert "for batch: 1" in found["sources[0].subscribe[0].send.symbol"]
    assert "more than one place" in found["sources[0].pool"]


def test_check_refuses_unsubscribe_each_without_subscribe_each(tmp_path: Path) -> None:
    body = "unsubscribe: [{each: subscribe, send: {op: unsubscribe}}]\n"
    found = messages(issues(tmp_path, source(body)))
    assert "needs a subscribe entry with each" in found["sources[0].unsubscribe"]


def test_items_placeholders_only_where_items_are(tmp_path: Path) -> None:
    body = 'subscribe: [{send: {op: subscribe, args: "{items}"}}]\n'
    found = messages(issues(tmp_path, source(body)))
    assert "the items of `each`" in found["sources[0].subscribe[0].send.args"]


def test_check_says_how_many_connections_a_pool_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = ", ".join(f"i{n}" for n in range(2500))
    path = tmp_path / "bridge.yaml"
    path.write_text(source(SUBSCRIBE % f"each: [{items}]" + "pool: {per_connection: 1000}\n"))
    assert main(["check", str(path)]) == 0
    assert "source feed: ws://127.0.0.1:1/ws (2,500 items over 3 connections) -> out" \
        in capsys.readouterr().out
