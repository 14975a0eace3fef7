"""The config loader: every example loads, and every mistake is reported at its FILE:LINE:COL."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from bridge.config import durations
from bridge.config.changes import SUBSCRIPTION_FIELDS, changed_fields
from bridge.config.load import load_config, load_schema
from bridge.config.model import Config
from bridge.config.sizes import PATTERN as SIZE_PATTERN
from bridge.config.specs import TLSConfig
from bridge.errors import ConfigError, ConfigIssue
from bridge.routing.context import Context
from bridge.sinks.presence_settings import Availability, HomeAssistant
from bridge.sinks.settings import FileSinkConfig, MqttSinkConfig, StdoutSinkConfig


def ec_pem() -> str:
    """A fresh P-256 private key in PEM, as a CDP key file holds."""
    private = ec.generate_private_key(ec.SECP256R1())
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))

MINIMAL = """\
version: 1
sinks:
  console: {type: stdout}
sources:
  - name: feed
    url: ws://127.0.0.1:1/ws
    routes:
      - sink: console
"""


def write(tmp_path: Path, text: str, name: str = "bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), env={} if env is None else env)


def issues(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return caught.value.issues


def at(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column where ``needle`` (unique) starts in the dedented ``text``."""
    text = textwrap.dedent(text)
    assert text.count(needle) == 1, needle
    before = text[: text.index(needle)]
    return before.count("\n") + 1, len(before.rsplit("\n", 1)[-1]) + 1


def only(found: list[ConfigIssue], path: str) -> ConfigIssue:
    matching = [i for i in found if i.path == path]
    assert len(matching) == 1, found
    return matching[0]


# --- the examples and the schema ---------------------------------------------------------------

def test_there_are_example_configs() -> None:
    names = {p.name for p in CONFIGS}
    assert {"demo.yaml", "home-assistant.yaml", "deribit-jsonrpc.yaml", "mqtt.yaml"} <= names
    assert {"kucoin.yaml", "binance-user.yaml", "coinbase.yaml", "coinbase-advanced.yaml",
            "bybit.yaml"} <= names


# What an example needs from the environment: only a private key, which has no stand-in.
EXAMPLE_ENV = {"coinbase-advanced.yaml": {"CDP_KEY_NAME": "organizations/o/apiKeys/k",
                                          "CDP_PRIVATE_KEY": ec_pem()}}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_example_config_loads_without_any_environment_but_a_private_key(
        path: Path) -> None:
    config = load_config(path, env=EXAMPLE_ENV.get(path.name, {}))
    assert config.sources
    assert {route.sink for src in config.sources for route in src.routes} <= set(config.sinks)


def test_demo_config_bridges_the_builtin_demo_upstream_to_stdout() -> None:
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml", env={})
    (source,) = config.sources
    assert source.url == "ws://127.0.0.1:8765/ws"
    assert source.auth is not None and source.auth.send is not None
    assert source.auth.send.render(Context()) == {"type": "auth", "data": {"token": "demo-token"}}
    assert config.sinks["console"] == StdoutSinkConfig("console", format="raw")


def subschemas(schema: dict[str, Any], where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema object inside ``schema`` (following keywords, not data), with its location."""
    found = [(where, schema)]
    children = [(f"{where}.properties.{k}", v) for k, v in schema.get("properties", {}).items()]
    children += [(f"{where}.$defs.{k}", v) for k, v in schema.get("$defs", {}).items()]
    branches = enumerate(schema.get("allOf", []))
    children += [(f"{where}.allOf[{i}].then", v["then"]) for i, v in branches]
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(key), dict):
            children.append((f"{where}.{key}", schema[key]))
    for child_where, child in children:
        found += subschemas(child, child_where)
    return found


def test_schema_is_valid_draft_2020_12_and_every_property_is_described() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    undocumented = [
        f"{where}.{name}"
        for where, node in subschemas(schema)
        for name, prop in node.get("properties", {}).items()
        if "description" not in prop
    ]
    assert len(subschemas(schema)) > 100
    assert undocumented == []


def test_schema_patterns_are_the_ones_the_parsers_accept() -> None:
    defs = load_schema()["$defs"]
    assert defs["duration"]["pattern"] == durations.PATTERN
    assert defs["size"]["pattern"] == SIZE_PATTERN


def test_every_object_in_the_schema_rejects_unknown_keys() -> None:
    open_objects = [
        where
        for where, node in subschemas(load_schema())
        if node.get("type") == "object" and node.get("additionalProperties") is not False
        and not isinstance(node.get("additionalProperties"), dict)
    ]
    # The sink dispatcher only reads `type`; each branch it dispatches to is closed.
    assert open_objects == [".$defs.sink"]


# --- errors at FILE:LINE:COL --------------------------------------------------------------------

WITH_AUTH = """\
version: 1
sinks:
  console: {type: stdout}
sources:
  - name: feed
    url: ws://127.0.0.1:1/ws
    auth:
      send: {type: auth}
      timeout: [10s]
"""


def test_type_error_points_at_the_key(tmp_path: Path) -> None:
    issue = only(issues(tmp_path, WITH_AUTH), "sources[0].auth.timeout")
    assert (issue.line, issue.column) == at(WITH_AUTH, "timeout:")
    assert issue.message == "expected string or number, got array"
    assert str(issue).startswith(f"{tmp_path / 'bridge.yaml'}:9:7: sources[0].auth.timeout: ")


def test_misspelt_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    text = MINIMAL.replace("    routes:", "    subscibe:\n      - send: {a: 1}\n    routes:")
    issue = only(issues(tmp_path, text), "sources[0].subscibe")
    assert issue.message == "unknown key 'subscibe'; did you mean 'subscribe'?"
    assert (issue.line, issue.column) == at(text, "subscibe:")


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(tmp_path: Path) -> None:
    text = MINIMAL.replace("{type: stdout}", "{type: stdout, colour: red}")
    issue = only(issues(tmp_path, text), "sinks.console.colour")
    assert issue.message == "unknown key 'colour'; allowed here: format, queue, type"


def test_route_to_a_missing_sink_names_the_close_match(tmp_path: Path) -> None:
    text = MINIMAL.replace("- sink: console", "- sink: consle")
    issue = only(issues(tmp_path, text), "sources[0].routes[0].sink")
    assert issue.message == "no sink named 'consle'; did you mean 'console'?"
    assert (issue.line, issue.column) == at(text, "sink: consle")


def test_route_to_an_unrelated_missing_sink_lists_the_defined_sinks(tmp_path: Path) -> None:
    issue = only(issues(tmp_path, MINIMAL.replace("- sink: console", "- sink: zz")),
                 "sources[0].routes[0].sink")
    assert issue.message == "no sink named 'zz'; defined: console"


def test_duplicate_source_name_is_reported_at_the_second_one(tmp_path: Path) -> None:
    text = MINIMAL + "  - name: feed\n    url: ws://127.0.0.1:2/\n"
    issue = only(issues(tmp_path, text), "sources[1].name")
    assert issue.message == "duplicate source name 'feed' (also sources[0])"
    assert issue.line == 9


def test_unknown_placeholder_is_reported_at_its_key(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    routes:", "    subscribe:\n      - send: {type: sub, id: \"{sequence}\"}\n    routes:"
    )
    issue = only(issues(tmp_path, text), "sources[0].subscribe[0].send.id")
    assert issue.message.startswith("unknown placeholder {sequence}; known: ")
    assert (issue.line, issue.column) == at(text, "id:")


def test_unknown_placeholder_in_a_topic_and_a_file_path(tmp_path: Path) -> None:
    text = """\
    version: 1
    sinks:
      log: {type: file, path: "/tmp/{src}.jsonl"}
    sources:
      - name: feed
        url: ws://127.0.0.1:1/ws
        routes: [{sink: log, topic: "t/{msg.a}/{nope}"}]
    """
    found = {i.path: i.message for i in issues(tmp_path, text)}
    assert found.keys() == {"sinks.log.path", "sources[0].routes[0].topic"}
    assert found["sinks.log.path"].startswith("unknown placeholder {src}")


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = """\
    version: 2
    sinks:
      console: {type: stdout, formt: raw}
      Bad: {type: stdout}
    defaults:
      connect_timeout: 10 sec
    sources:
      - name: feed
        url: http://nope
        routes: [{sink: consle}]
      - name: feed
        url: ws://ok/
        on_invalid: dropp
    """
    found = issues(tmp_path, text)
    assert [i.path for i in found] == [
        "version",
        "sinks.console.formt",
        "sinks.Bad",
        "defaults.connect_timeout",
        "sources[0].url",
        "sources[0].routes[0].sink",
        "sources[1].name",
        "sources[1].on_invalid",
    ]
    assert [i.line for i in found] == sorted(i.line for i in found)
    messages = "\n".join(str(i) for i in found)
    assert "did you mean 'format'?" in messages
    assert '"10 sec" is not a duration' in messages
    assert "did you mean 'drop'?" in messages
    assert 'name "Bad" is not a valid name' in messages


def test_yaml_syntax_error_is_one_issue_at_the_mark(tmp_path: Path) -> None:
    (issue,) = issues(tmp_path, "version: 1\nsinks: {a: 1\nsources: []\n")
    assert issue.line == 3
    assert issue.message.startswith("YAML: ")


def test_duplicate_yaml_key_is_reported_not_silently_overwritten(tmp_path: Path) -> None:
    text = MINIMAL.replace("    routes:", "    url: ws://127.0.0.1:2/ws\n    routes:")
    issue = only(issues(tmp_path, text), "sources[0].url")
    assert issue.message == "duplicate key 'url'; only the last would count"
    assert issue.line == 7


def test_merge_keys_may_be_overridden_without_a_duplicate_error(tmp_path: Path) -> None:
    text = """\
    version: 1
    sinks:
      a: &common {type: file, path: /tmp/a.jsonl, format: raw}
      b: {<<: *common, path: /tmp/b.jsonl}
    sources: [{name: feed, url: "ws://h/", routes: [{sink: b}]}]
    """
    sink = load(tmp_path, text).sinks["b"]
    assert isinstance(sink, FileSinkConfig)
    assert (sink.path.render_str(Context()), sink.format) == ("/tmp/b.jsonl", "raw")


def test_recursive_alias_is_an_error_not_a_crash(tmp_path: Path) -> None:
    (issue,) = issues(tmp_path, "version: 1\nsinks: {}\nsources: &s [*s]\n")
    assert "refers to itself" in issue.message


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file_is_one_clear_issue(tmp_path: Path, text: str) -> None:
    (issue,) = issues(tmp_path, text)
    assert "empty" in issue.message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml", env={})
    assert "cannot read the file: No such file or directory" in str(caught.value)


def test_sinks_no_route_names_are_allowed(tmp_path: Path) -> None:
    text = MINIMAL.replace("sources:", "  spare: {type: file, path: /tmp/spare}\nsources:")
    assert set(load(tmp_path, text).sinks) == {"console", "spare"}


# --- placeholders and secrets -------------------------------------------------------------------

# --- pattern operators, checked at their keys ---------------------------------------------------

BAD_PATTERNS = MINIMAL.replace("    routes:\n      - sink: console\n", """\
    auth:
      send: {op: auth}
      expect: {ok: {$eqq: true}}
    subscribe:
      - send: {op: sub}
        expect: {p: {$in: 5}}
    replies:
      - when: {op: {$regex: "ping("}}
        send: {op: pong}
    routes:
      - sink: console
        when: {e: trade, s: {$in: BTC}, p: {$gte: "1", $lt: true}}
""")


def test_every_bad_operator_is_reported_at_once_at_its_key(tmp_path: Path) -> None:
    found = {(i.line, i.column, i.path): i.message for i in issues(tmp_path, BAD_PATTERNS)}
    assert found == {
        (*at(BAD_PATTERNS, "$eqq"), "sources[0].auth.expect.ok.$eqq"):
            "unknown operator '$eqq'; did you mean '$eq'?",
        (*at(BAD_PATTERNS, "$in: 5"), "sources[0].subscribe[0].expect.p.$in"):
            "$in needs a list, got integer",
        (*at(BAD_PATTERNS, "$regex"), "sources[0].replies[0].when.op.$regex"):
            "invalid $regex: missing ), unterminated subpattern at position 4",
        (*at(BAD_PATTERNS, "$in: BTC"), "sources[0].routes[0].when.s.$in"):
            "$in needs a list, got string",
        (*at(BAD_PATTERNS, "$lt"), "sources[0].routes[0].when.p.$lt"):
            "$lt needs a number or a string, got boolean",
    }


def test_operators_in_a_valid_config_are_compiled(tmp_path: Path) -> None:
    text = BAD_PATTERNS.replace("$eqq", "$eq").replace("$in: 5", "$in: [5]")
    text = text.replace('"ping("', '"^ping"').replace("$in: BTC", "$in: [BTC]")
    route = load(tmp_path, text.replace("$lt: true", '$lt: "9"')).sources[0].routes[0]
    assert route.when is not None
    assert route.when.matches({"e": "trade", "s": "BTC", "p": "5"})
    assert not route.when.matches({"e": "trade", "s": "BTC", "p": 5})


# --- route steps: each, item_when, on_change, throttle, batch ------------------------------------

STEPS = """\
version: 1
sinks:
  broker:
    type: mqtt
    url: "mqtt://127.0.0.1:1883"
    properties: {user: {s: "{msg.s}", t: "{now_ms}"}}
  archive: {type: file, path: "/tmp/{source}/{msg.day}.jsonl"}
  plain: {type: file, path: "/tmp/{source}.jsonl"}
sources:
  - name: feed
    url: ws://127.0.0.1:1/ws
    subscribe:
      - send: {op: sub, n: "{index}"}
    routes:
      - sink: plain
        topic: "t/{item.id}"
        item_when: {id: 1}
      - sink: plain
        each: "{item.list}"
        payload: "{item}"
      - sink: broker
        batch: {max: 10, within: 1s}
      - sink: archive
        batch: {max: 10, within: 1s}
      - sink: plain
        topic: "t/{msg.s}"
        batch: {max: 10, within: 1s}
"""


def test_route_steps_are_checked_each_at_its_key(tmp_path: Path) -> None:
    found = {(i.line, i.path): i.message for i in issues(tmp_path, STEPS)}
    batches = [n for n, line in enumerate(STEPS.splitlines(), 1) if "batch:" in line]
    assert found == {
        (at(STEPS, 'n: "{index}"')[0], "sources[0].subscribe[0].send.n"):
            "{index} is only known in a route with each",
        (at(STEPS, 'topic: "t/{item.id}"')[0], "sources[0].routes[0].topic"):
            "{item} is only known in a route with each",
        (at(STEPS, "item_when:")[0], "sources[0].routes[0].item_when"):
            "item_when filters the elements of each; add each",
        (at(STEPS, "each:")[0], "sources[0].routes[1].each"):
            "each reads the message, not {item} or {index}",
        (batches[0], "sources[0].routes[2].batch"):
            "sink 'broker' cannot take a batch: its user properties read {msg} of each message",
        (batches[1], "sources[0].routes[3].batch"):
            "sink 'archive' cannot take a batch: its path reads {msg} of each message",
        (at(STEPS, 'topic: "t/{msg.s}"')[0], "sources[0].routes[4].topic"):
            "a batch goes to one topic, rendered once, but this one reads {msg}",
    }


def test_route_steps_build_with_their_defaults(tmp_path: Path) -> None:
    text = MINIMAL.replace("      - sink: console\n", """\
      - sink: console
        each: "{msg.changes}"
        item_when: {state: {$exists: true}}
        on_change: {key: "{item.id}", value: "{item.state}", deadband: 0.5}
        throttle: {key: "{item.id}", every: 250ms}
        batch: {max: 50, within: 2s}
""")
    (spec,) = load(tmp_path, text).sources[0].routes
    assert spec.each is not None and spec.each.spec == "{msg.changes}"
    assert spec.item_when is not None and spec.item_when.matches({"state": None})
    assert spec.on_change is not None and (spec.on_change.deadband, spec.on_change.max_keys) == (
        0.5, 100_000)
    assert spec.throttle is not None and (spec.throttle.every, spec.throttle.keep) == (0.25, "last")
    assert spec.batch is not None and (spec.batch.max, spec.batch.within) == (50, 2.0)


SECRETS = """\
version: 1
sinks:
  broker: {type: mqtt, url: "mqtt://localhost", password: "${file:mqtt-password}"}
sources:
  - name: feed
    url: "wss://h/ws?token=${env:URL_TOKEN}"
    headers: {Authorization: "Bearer ${env:API_TOKEN}"}
    auth:
      send: {type: auth, access_token: "${env:HA_TOKEN:-fallback}"}
    routes: [{sink: broker, topic: "feeds/{source}"}]
"""
SECRET_ENV = {"URL_TOKEN": "u-tok", "API_TOKEN": "a-tok", "HA_TOKEN": "h{seq}tok"}


def test_env_and_file_placeholders_resolve_and_become_secrets(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text("pw-from-file\n")
    config = load(tmp_path, SECRETS, SECRET_ENV)
    (source,) = config.sources
    broker = config.sinks["broker"]
    assert source.url == "wss://h/ws?token=u-tok"
    assert source.headers == {"Authorization": "Bearer a-tok"}
    assert isinstance(broker, MqttSinkConfig) and broker.password == "pw-from-file"
    assert config.secrets >= {"u-tok", "a-tok", "h{seq}tok", "pw-from-file"}


def test_a_secret_with_braces_is_sent_literally_not_templated(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text("pw")
    (source,) = load(tmp_path, SECRETS, SECRET_ENV).sources
    assert source.auth is not None and source.auth.send is not None
    sent = source.auth.send.render(Context(seq=lambda: 7))
    assert sent == {"type": "auth", "access_token": "h{seq}tok"}


def test_env_default_applies_when_the_variable_is_unset(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text("pw")
    env = {k: v for k, v in SECRET_ENV.items() if k != "HA_TOKEN"}
    (source,) = load(tmp_path, SECRETS, env).sources
    assert source.auth is not None and source.auth.send is not None
    assert source.auth.send.render(Context())["access_token"] == "fallback"


def test_unset_variable_and_missing_file_are_reported_at_their_keys(tmp_path: Path) -> None:
    found = issues(tmp_path, SECRETS, {"URL_TOKEN": "u-tok"})
    by_path = {i.path: i for i in found}
    assert set(by_path) == {"sinks.broker.password", "sources[0].headers.Authorization"}
    assert by_path["sources[0].headers.Authorization"].message.startswith(
        "environment variable API_TOKEN is not set"
    )
    assert "cannot read ${file:mqtt-password}" in by_path["sinks.broker.password"].message
    assert (found[0].line, found[0].column) == at(SECRETS, "password:")


def test_secrets_never_appear_in_error_messages(tmp_path: Path) -> None:
    text = """\
    version: 1
    sinks:
      broker: {type: mqtt, url: "mqtt://h", password: literal-pw, keepalive: literal-pw}
    sources:
      - name: feed
        url: "http://h/?api_key=url-secret"
        headers: {X-Api-Key: header-secret}
        connect_timeout: "${env:TIMEOUT}"
        idle_timeout: header-secret
        routes: [{sink: broker}]
    """
    found = issues(tmp_path, text, {"TIMEOUT": "env-secret"})
    output = "\n".join(map(str, found))
    assert len(found) == 4
    for secret in ("literal-pw", "url-secret", "header-secret"):
        assert secret not in output
    assert '"***" is not a duration' in output
    # An ${env:} value in a setting that is no credential is config: shown as it is.
    assert '"env-secret" is not a duration' in output


def test_file_placeholder_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "token").write_text("t0k\n")
    text = MINIMAL.replace("ws://127.0.0.1:1/ws", '"ws://h/?t=${file:creds/token}"')
    assert load(tmp_path, text).sources[0].url == "ws://h/?t=t0k"


# --- defaults, durations and typed values -------------------------------------------------------

def test_sources_inherit_defaults_and_override_them_key_by_key(tmp_path: Path) -> None:
    text = MINIMAL.replace("sources:", """\
defaults:
  connect_timeout: 3s
  reconnect: {initial_delay: 1s, max_delay: 10s, multiplier: 3}
  ping: {interval: 5s, timeout: 4s}
  idle_timeout: 1m
sources:""") + """\
  - name: other
    url: ws://127.0.0.1:2/
    connect_timeout: 250ms
    reconnect: {max_delay: 2s}
    ping: {timeout: 1s}
"""
    inherits, overrides = load(tmp_path, text).sources
    assert inherits.connect_timeout == 3.0
    assert (inherits.reconnect.initial_delay, inherits.reconnect.max_delay) == (1.0, 10.0)
    assert (inherits.ping_interval, inherits.ping_timeout, inherits.idle_timeout) == (5, 4, 60)
    assert overrides.connect_timeout == 0.25
    assert overrides.reconnect.initial_delay == 1.0
    assert overrides.reconnect.max_delay == 2.0
    assert overrides.reconnect.multiplier == 3.0
    assert (overrides.ping_interval, overrides.ping_timeout) == (5.0, 1.0)


def test_omitted_settings_take_the_schema_defaults(tmp_path: Path) -> None:
    text = MINIMAL.replace("console: {type: stdout}", """\
console: {type: stdout}
  log: {type: file, path: /tmp/x.jsonl}
  broker: {type: mqtt, url: "mqtt://h"}""")
    config = load(tmp_path, text)
    (source,) = config.sources
    defs = load_schema()["$defs"]
    seconds = durations.parse_duration
    source_props = defs["source"]["properties"]
    assert source.connect_timeout == seconds(source_props["connect_timeout"]["default"])
    assert source.idle_timeout == seconds(source_props["idle_timeout"]["default"])
    assert source.ping_interval == seconds(defs["ping"]["properties"]["interval"]["default"])
    assert source.ping_timeout == seconds(defs["ping"]["properties"]["timeout"]["default"])
    backoff = defs["reconnect"]["properties"]
    assert source.reconnect.initial_delay == seconds(backoff["initial_delay"]["default"])
    assert source.reconnect.max_delay == seconds(backoff["max_delay"]["default"])
    assert source.reconnect.multiplier == backoff["multiplier"]["default"]
    assert source.reconnect.jitter == backoff["jitter"]["default"]
    assert source.reconnect.max_attempts == backoff["max_attempts"]["default"]
    assert source.max_message_size == 1 << 20
    assert (source.compression, source.on_invalid) == (True, "forward")
    console, log, broker = config.sinks["console"], config.sinks["log"], config.sinks["broker"]
    assert isinstance(console, StdoutSinkConfig) and console.format == "raw"
    assert isinstance(log, FileSinkConfig) and log.format == "envelope"
    assert isinstance(broker, MqttSinkConfig)
    assert broker.client_id == f"ws-bridge-{socket.gethostname()}"
    assert (broker.protocol, broker.qos, broker.keepalive, broker.queue.max_messages) == (
        5, 0, 30.0, 100_000
    )
    assert broker.linger == seconds(defs["mqtt_sink"]["properties"]["linger"]["default"]) == 0
    assert config.coalesce == seconds(load_schema()["properties"]["coalesce"]["default"]) == 0.0004


@pytest.mark.parametrize(("written", "seconds"), [("0", 0.0), ("1ms", 0.001), ("0.25ms", 0.00025),
                                                  ("100ms", 0.1)])
def test_coalesce_is_a_duration_of_at_most_100ms(tmp_path: Path, written: str,
                                                   seconds: float) -> None:
    assert load(tmp_path, f"coalesce: {written}\n" + MINIMAL).coalesce == seconds


def test_a_coalesce_over_100ms_or_not_a_duration_is_refused_where_it_is_written(
        tmp_path: Path) -> None:
    for written, says in (("150ms", "is 150ms: at most 100ms"), ("fast", "is not a duration")):
        text = MINIMAL + f"coalesce: {written}\n"
        issue = only(issues(tmp_path, text), "coalesce")
        assert says in issue.message
        assert (issue.line, issue.column) == at(text, "coalesce")


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("500ms", 0.5), ("10s", 10.0), ("5m", 300.0), ("1h", 3600.0), ("2.5", None), (2.5, 2.5)],
)
def test_durations_are_converted_to_seconds(
    tmp_path: Path, written: object, seconds: float | None
) -> None:
    text = MINIMAL + f"    idle_timeout: {written}\n"
    if seconds is None:  # a quoted number without a unit is ambiguous, so it is refused
        text = MINIMAL + f'    idle_timeout: "{written}"\n'
        assert only(issues(tmp_path, text), "sources[0].idle_timeout")
        return
    assert load(tmp_path, text).sources[0].idle_timeout == seconds


@pytest.mark.parametrize(
    ("written", "size"),
    [("65536", 65536), ("512KiB", 524288), ("1MiB", 1 << 20), ("2MB", 2 * 10**6)],
)
def test_sizes_are_converted_to_bytes(tmp_path: Path, written: str, size: int) -> None:
    text = MINIMAL + f"    max_message_size: {written}\n"
    assert load(tmp_path, text).sources[0].max_message_size == size


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://broker.local", "broker.local", 1883, False),
        ("mqtts://broker.local", "broker.local", 8883, True),
        ("mqtt://10.0.0.5:1884", "10.0.0.5", 1884, False),
        ("mqtts://[::1]:9000/", "::1", 9000, True),
    ],
)
def test_mqtt_url_gives_host_port_and_tls(
    tmp_path: Path, url: str, host: str, port: int, tls: bool
) -> None:
    text = MINIMAL.replace("{type: stdout}", f'{{type: mqtt, url: "{url}"}}')
    broker = load(tmp_path, text).sinks["console"]
    assert isinstance(broker, MqttSinkConfig)
    assert (broker.host, broker.port, broker.tls is not None) == (host, port, tls)


def test_mqtt_credentials_tls_and_protocol(tmp_path: Path) -> None:
    text = MINIMAL.replace("{type: stdout}", """\
{type: mqtt, url: "mqtts://bridge:pw@h", protocol: 3.1.1,
             tls: {ca_file: /ca.pem, verify: false}, client_id: "id-{hostname}",
             properties: {message_expiry: 1m, user: {src: "{source}"}}}""")
    config = load(tmp_path, text)
    broker = config.sinks["console"]
    assert isinstance(broker, MqttSinkConfig)
    assert (broker.username, broker.password, broker.protocol) == ("bridge", "pw", 4)
    assert broker.tls == TLSConfig(ca_file="/ca.pem", verify=False)
    assert broker.message_expiry == 60.0
    assert broker.client_id == f"id-{socket.gethostname()}"
    assert broker.user_properties["src"].render(Context(source="feed")) == "feed"
    assert "pw" in config.secrets


def test_mqtt_connections_default_to_one_and_are_read(tmp_path: Path) -> None:
    one = load(tmp_path, MINIMAL.replace("{type: stdout}", '{type: mqtt, url: "mqtt://h"}'))
    four = load(tmp_path, MINIMAL.replace("{type: stdout}",
                                          '{type: mqtt, url: "mqtt://h", connections: 4}'))
    assert [c.sinks["console"].connections for c in (one, four)] == [1, 4]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ('"a/+/b"', "wildcards"),
        ('"a/#"', "wildcards"),
        ('"feeds/+/{msg.s}"', "wildcards"),
        ('""', "empty"),
        ('"a\\0b"', "NUL"),
        ('"' + "x" * 65536 + '"', "longer than 65535 bytes"),
    ],
)
def test_invalid_static_mqtt_topics_are_rejected(tmp_path: Path, topic: str, problem: str) -> None:
    text = MINIMAL.replace("{type: stdout}", '{type: mqtt, url: "mqtt://h"}').replace(
        "- sink: console", f"- sink: console\n        topic: {topic}"
    )
    assert problem in only(issues(tmp_path, text), "sources[0].routes[0].topic").message


def test_templated_topics_and_topics_for_other_sinks_are_accepted(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "console: {type: stdout}", 'console: {type: stdout}\n  broker: {type: mqtt, url: "mqtt://h"}'
    ).replace(
        "      - sink: console",
        "      - {sink: console, topic: a/+/b}\n"
        "      - {sink: broker, topic: 'f/{source}/{msg.s}'}",
    )
    routes = load(tmp_path, text).sources[0].routes
    assert [r.topic.render_str(Context(source="s", msg={"s": "x"})) for r in routes if r.topic] == [
        "a/+/b",
        "f/s/x",
    ]


def test_session_templates_and_patterns_are_compiled(tmp_path: Path) -> None:
    text = MINIMAL.replace("    routes:", """\
    heartbeat: {send: {id: "{seq}", type: ping}, expect: {type: pong}, interval: 30s}
    replies:
      - when: {method: heartbeat}
        send: {id: "{seq}", echo: "{msg.params}"}
    routes:""")
    (source,) = load(tmp_path, text).sources
    assert source.heartbeat is not None and source.heartbeat.expect is not None
    assert source.heartbeat.send.render(Context(seq=lambda: 4)) == {"id": 4, "type": "ping"}
    assert (source.heartbeat.interval, source.heartbeat.timeout) == (30.0, 10.0)
    assert source.heartbeat.expect.matches({"type": "pong", "id": 4})
    (reply,) = source.replies
    assert reply.when.matches({"method": "heartbeat", "params": {"a": 1}})
    ctx = Context(msg={"params": {"a": 1}}, seq=lambda: 9)
    assert reply.send.render(ctx) == {"id": 9, "echo": {"a": 1}}


def test_on_off_yes_no_and_dates_stay_strings_as_in_yaml_1_2(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "- sink: console",
        "- sink: console\n        when: {state: on, ok: yes, day: 2024-01-01, b: true}",
    )
    (route,) = load(tmp_path, text).sources[0].routes
    assert route.when is not None
    assert route.when.spec == {"state": "on", "ok": "yes", "day": "2024-01-01", "b": True}


def test_non_string_key_is_reported_at_the_key(tmp_path: Path) -> None:
    text = MINIMAL.replace("    routes:", "    headers: {1: x}\n    routes:")
    issue = only(issues(tmp_path, text), "sources[0].headers.1")
    assert issue.message == "the key 1 is not a string; quote it"


@pytest.mark.parametrize(
    ("sink", "path", "message"),
    [
        ('{type: mqtt, url: "mqtt://h:0"}', "sinks.console.url", "the port must be"),
        ('{type: mqtt, url: "mqtt://h:70000"}', "sinks.console.url", "the port must be"),
        ('{type: mqtt, url: "mqtt://h", tls: {verify: false}}', "sinks.console.tls", "mqtts://"),
        ('{type: mqtt, url: "mqtt://h", client_id: "b-{seq}"}', "sinks.console.client_id",
         "only use the placeholder {hostname}"),
        ('{type: mqtt, url: "mqtt://h", availability: {topic: "s/#"}}',
         "sinks.console.availability.topic", "wildcards"),
        ('{type: mqtt, url: "tcp://h"}', "sinks.console.url", "is not an MQTT URL"),
        ('{type: mqtt, url: "mqtt://h", homeassistant: {discovery_prefix: "ha/+"}}',
         "sinks.console.homeassistant.discovery_prefix", "wildcards"),
        ('{type: mqtt, url: "mqtt://h", homeassistant: {status_topic: "ha/#"}}',
         "sinks.console.homeassistant.status_topic", "wildcards"),
        ('{type: mqtt, url: "mqtt://h", homeassistant: {interval: 0s}}',
         "sinks.console.homeassistant.interval", "longer than 0s"),
        ('{type: mqtt, url: "mqtt://h", homeassistant: {control: true}}',
         "sinks.console.homeassistant.control", "did you mean 'controls'"),
        ('{type: mqtt, url: "mqtt://h", connections: 0}', "sinks.console.connections",
         "must be >= 1; got 0"),
    ],
)
def test_mqtt_sink_mistakes_are_reported(
    tmp_path: Path, sink: str, path: str, message: str
) -> None:
    text = MINIMAL.replace("{type: stdout}", sink)
    assert message in only(issues(tmp_path, text), path).message


def test_homeassistant_defaults_and_the_bridge_availability_it_needs(tmp_path: Path) -> None:
    text = MINIMAL.replace("{type: stdout}", '{type: mqtt, url: "mqtt://h", topic_prefix: wb, '
                           'homeassistant: {}}')
    sink = load(tmp_path, text).sinks["console"]
    assert isinstance(sink, MqttSinkConfig)
    assert sink.homeassistant == HomeAssistant("homeassistant", "homeassistant/status", 30.0, False)
    assert sink.availability == Availability("wb/bridge/availability")
    plain = load(tmp_path, MINIMAL.replace("{type: stdout}", '{type: mqtt, url: "mqtt://h"}'))
    assert plain.sinks["console"].availability is None  # type: ignore[union-attr]


def test_tls_settings_on_a_plain_ws_url_are_reported(tmp_path: Path) -> None:
    text = MINIMAL.replace("    routes:", "    tls: {ca_file: /ca.pem}\n    routes:")
    assert "use wss://" in only(issues(tmp_path, text), "sources[0].tls").message
    secure = text.replace("ws://127.0.0.1:1/ws", "wss://127.0.0.1:1/ws")
    assert load(tmp_path, secure).sources[0].tls.ca_file == "/ca.pem"


# --- captured values and renewed connections ---------------------------------------------------

GATEWAY = MINIMAL.replace("    routes:", """\
    capture:
      - when: {op: 10}
        set: {heartbeat_ms: "{msg.d.heartbeat_interval}"}
      - {when: {op: 0}, set: {last_seq: "{msg.s}"}}
    heartbeat:
      {send: {op: 1, d: "{var.last_seq}"}, expect: {op: 11}, interval: "{var.heartbeat_ms}ms"}
    reconnect_when: [{op: 7}]
    max_connection_age: 23h
    rollover: overlap
    routes:""")


def test_capture_and_renewal_settings_are_typed(tmp_path: Path) -> None:
    src = load(tmp_path, GATEWAY).sources[0]
    assert [dict(c.set).keys() for c in src.capture] == [{"heartbeat_ms"}, {"last_seq"}]
    assert src.capture[0].when.matches({"op": 10, "d": {}})
    assert src.heartbeat is not None and src.heartbeat.interval_from is not None
    known = Context(names={"var": {"heartbeat_ms": 41250}})
    assert src.heartbeat.interval_from.render(known) == "41250ms"
    assert src.renew.max_age == 23 * 3600 and src.renew.rollover == "overlap"
    assert src.renew.reconnect_when[0].matches({"op": 7})


def test_a_variable_no_capture_sets_is_reported_at_its_key(tmp_path: Path) -> None:
    text = GATEWAY.replace('d: "{var.last_seq}"', 'd: "{var.last_sequence}"')
    issue = only(issues(tmp_path, text), "sources[0].heartbeat.send.d")
    assert issue.message.startswith("{var.last_sequence} is never set: no capture sets it")
    assert "heartbeat_ms, last_seq" in issue.message
    assert (issue.line, issue.column) == at(text, 'd: "{var.last_sequence}"')


def test_a_heartbeat_interval_that_is_neither_a_duration_nor_a_template(tmp_path: Path) -> None:
    text = GATEWAY.replace('interval: "{var.heartbeat_ms}ms"', "interval: soon")
    issue = only(issues(tmp_path, text), "sources[0].heartbeat.interval")
    assert issue.message.startswith("'soon' ")  # neither a duration nor a template


def test_a_bad_rollover_and_a_bad_capture_are_reported(tmp_path: Path) -> None:
    text = GATEWAY.replace("rollover: overlap", "rollover: sometimes").replace(
        '{when: {op: 0}, set: {last_seq: "{msg.s}"}}', "{when: {op: 0}}")
    found = {i.path for i in issues(tmp_path, text)}
    assert {"sources[0].rollover", "sources[0].capture[1]"} <= found


def test_a_reload_sees_a_changed_capture_or_renewal_as_a_source_change(tmp_path: Path) -> None:
    before = load(tmp_path, GATEWAY).sources[0]
    assert changed_fields(before, load(tmp_path, GATEWAY).sources[0]) == set()
    edits = {"capture": ("{msg.s}", "{msg.seq}"), "renew": ("rollover: overlap", "")}
    for field, (old, new) in edits.items():
        changed = changed_fields(before, load(tmp_path, GATEWAY.replace(old, new)).sources[0])
        assert changed == {field}
        assert not changed & SUBSCRIPTION_FIELDS  # so the source reconnects with it


def test_a_route_reading_a_captured_value_is_reported(tmp_path: Path) -> None:
    route = '      - {sink: console, topic: "{var.last_seq}"}'
    text = GATEWAY.replace("      - sink: console", route)
    issue = only(issues(tmp_path, text), "sources[0].routes[0].topic")
    assert issue.message == ("{var.last_seq}: routes cannot read captured values; they are for "
                             "what the source sends")
