"""Property-based fuzzing: whatever the input, the config loader, the template renderer and the
pattern matcher answer with a value or their own clear error, never a traceback."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bridge.config.load import load_config, load_schema
from bridge.config.model import Config
from bridge.config.template_paths import literal
from bridge.decoding import INVALID
from bridge.errors import ConfigError
from bridge.routing.compiled import PatternError
from bridge.routing.context import Context, TemplateError
from bridge.routing.operators import OPERATORS
from bridge.routing.pattern import Pattern, _match
from bridge.routing.template import Template
from bridge.sinks.settings import FileSinkConfig

FUZZ = settings(
    max_examples=200, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HUGE_INDEX = "{msg[" + "9" * 5000 + "]}"  # more digits than Python converts to an int

# --- JSON values -------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=16,
)
# A plain pattern: a key starting with "$" is an operator, fuzzed apart (OPERATOR_SPECS).
PLAIN_KEYS = st.text(max_size=6).filter(lambda key: not key.startswith("$"))
PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(PLAIN_KEYS, inner, max_size=4),
    max_leaves=16,
)
OPERATOR_SPECS = st.recursive(
    PLAIN,
    lambda inner: st.dictionaries(
        st.sampled_from([*OPERATORS, "$nope", "a", "b"]), inner | st.lists(inner, max_size=3),
        max_size=3),
    max_leaves=12,
)


# --- the config loader -------------------------------------------------------------------------

def load_or_error(path: Path) -> Config | ConfigError:
    """The loader's answer; any exception other than ConfigError fails the property."""
    try:
        return load_config(path, env={"SET": "value"})
    except ConfigError as exc:
        assert exc.issues, "a ConfigError lists at least one problem"
        for issue in exc.issues:
            assert issue.file == str(path)
            assert issue.line >= 1 and issue.column >= 1, issue
            assert isinstance(issue.message, str) and issue.message.strip(), issue
            assert "Traceback" not in issue.message
        return exc


YAML_TEXT = st.text(max_size=200) | st.text(
    alphabet=st.sampled_from(list("{}[],:-?&*!|>'\"#%@` \n\t.$0123456789abcxyz")), max_size=120
)
WORDS = st.sampled_from([
    "version: 1\n", "sinks:\n", "sources:\n", "  - name: a\n", "    url: ws://127.0.0.1/\n",
    "  o: {type: stdout}\n", "    routes: [{sink: o}]\n", "    auth: {send: {t: '{seq}'}}\n",
    "&a [*a]\n", "<<: *a\n", "!!binary AAAA\n", "!!set {x}\n", "? [a]\n: 1\n", "\t", "${env:",
    "${env:SET}", "${file:/nonexistent}", "{msg.a}", "'", '"', "\x07", "\ufeff", "\r", "9" * 5000,
    "[" * 40, "{a: " * 40, "]", "}", "\u2028", "\x85", ".nan", ".inf", "~", "2024-01-01",
])
YAML_PIECES = st.lists(WORDS | st.text(max_size=8), max_size=12).map("".join)


@FUZZ
@given(text=YAML_TEXT | YAML_PIECES)
@example(text="a: \x07")
@example(text="[" * 5000)
@example(text="version: " + "9" * 5000)
@example(text="version: 1\nsinks: {}\nsources: &s [*s]\n")
def test_any_text_loads_or_gives_issues_with_positions(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    load_or_error(path)


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        ("a: \x07",
         (1, 4, "YAML: unacceptable character #x0007: special characters are not allowed")),
        ("[" * 5000, (1, 1, "YAML: nested too deeply")),
        ("version: " + "9" * 5000,
         (1, 10, "YAML: a number of 5000 digits is too long for any setting")),
        ("version: 1\nsinks: {}\nsources: &s [*s]\n",
         (1, 1, "YAML: the alias at sources[0] refers to itself")),
    ],
    ids=["control-character", "deep-nesting", "huge-number", "recursive-alias"],
)
def test_texts_fuzzing_found_are_reported_where_the_yaml_breaks(
    tmp_path: Path, text: str, issue: tuple[int, int, str]
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    answer = load_or_error(path)
    assert isinstance(answer, ConfigError), "the loader accepted text it must refuse"
    assert [(i.line, i.column, i.message) for i in answer.issues] == [issue]
    assert answer.issues[0].path == ""  # the YAML failed: no key path to point at


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_load_or_give_issues(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    load_or_error(path)


@FUZZ
@given(doc=JSON)
def test_any_yaml_structure_loads_or_gives_issues(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    load_or_error(path)


# Documents shaped by the schema, so that most parts pass it and reach the typed builders and
# the semantic checks; now and then any JSON value stands in for a valid one.
DEFS = load_schema()["$defs"]
TEMPLATE_TEXT = st.sampled_from([
    "{seq}", "{source}", "{now_ms}", "{msg}", "{msg.a.b}", "{msg.list[0]}", "{hostname}",
    "{nope}", "{seq.x}", "{{", "}}", "{", "a/{msg.s}/b", "${env:SET}", "${env:UNSET}",
    "${env:UNSET:-d}", "$${x}", "x", "", "a/+/#", "{msg[12345678901234567890]}",
])
TEXT = TEMPLATE_TEXT | st.text(max_size=10)


def from_schema(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances of a schema node: mostly valid, sometimes anything."""
    anything = JSON if depth < 2 else SCALARS
    return st.one_of(*[_valid(node, depth)] * 6, anything)


def _valid(node: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        if name == "sink":
            kinds = ("stdout_sink", "file_sink", "mqtt_sink", "websocket_sink")
            return st.one_of(*[_valid(DEFS[kind], depth) for kind in kinds])
        return _valid(DEFS[name], depth)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    examples = node.get("examples", [])
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        required = [key for key in node.get("required", []) if key in props]
        strategy = st.fixed_dictionaries(
            {key: from_schema(props[key], depth + 1) for key in required},
            optional={k: from_schema(v, depth + 1) for k, v in props.items() if k not in required},
        )
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            names = st.sampled_from(["a", "b", "Authorization", "X-Api-Key", "console"])
            strategy = st.dictionaries(names, from_schema(extra, depth + 1), max_size=3)
        return strategy
    if kind == "array":
        items = node.get("items", {})
        return st.lists(from_schema(items, depth + 1), min_size=node.get("minItems", 0),
                        max_size=3)
    if isinstance(kind, list):  # durations and sizes: a number or a string with a unit
        pool = [st.sampled_from(examples)] if examples else []
        return st.one_of(*pool, st.integers(0, 100), st.floats(0, 100), TEXT)
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        low = node.get("minimum", 0)
        return st.integers(low, low + 70000) if kind == "integer" else st.floats(low, low + 10)
    if kind == "string":
        pool = [st.sampled_from(examples)] if examples else []
        if "pattern" in node:
            pool.append(st.from_regex(node["pattern"], fullmatch=True))
        return st.one_of(*pool, TEXT)
    return JSON  # `match` and `message`: any JSON value


SCHEMA_SHAPED = st.fixed_dictionaries({
    "version": st.just(1),
    "sinks": st.dictionaries(st.sampled_from(["console", "out", "bad name"]),
                             _valid({"$ref": "#/$defs/sink"}, 1), max_size=3),
    "sources": st.lists(_valid(DEFS["source"], 1), min_size=1, max_size=3),
}, optional={"defaults": _valid(DEFS["defaults"], 1)})


@FUZZ
@given(doc=SCHEMA_SHAPED)
def test_schema_shaped_documents_load_or_give_issues(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    load_or_error(path)


FOUND = """\
version: 1
sinks:
  o: {{type: stdout}}
  {sink}
sources:
  - name: a
    url: ws://127.0.0.1/
    {source}
"""
ROUTE = "routes: [{sink: o}]\n    "
LONG_INDEX = "{msg[" + "1" * 4400 + "]}"  # also past Python's 4300-digit int conversion limit
NOT_AN_MQTT_URL = "is not an MQTT URL: write mqtt://host[:port] or mqtts://host[:port]"


def found(tmp_path: Path, sink: str, source: str) -> Path:
    path = tmp_path / "found.yaml"
    path.write_text(FOUND.format(sink=sink, source=source))
    return path


@pytest.mark.parametrize(
    ("sink", "source", "problems"),
    [
        ("", ROUTE + f'subscribe: [{{send: {{x: "{HUGE_INDEX}"}}}}]',
         [("sources[0].subscribe[0].send.x", f"{HUGE_INDEX}: index out of range")]),
        ("", f'routes: [{{sink: o, topic: "t/{LONG_INDEX}"}}]',
         [("sources[0].routes[0].topic", f"{LONG_INDEX}: index out of range")]),
        # The schema's URL pattern lets a "[" through; the sink builder must not crash on it.
        ('m: {type: mqtt, url: "mqtt://[x"}', ROUTE,
         [("sinks.m.url", f'"mqtt://[x" {NOT_AN_MQTT_URL}')]),
        ('m: {type: mqtt, url: "mqtt://[::1"}', ROUTE,
         [("sinks.m.url", f'"mqtt://[::1" {NOT_AN_MQTT_URL}')]),
        # Not JSON, so it could never be sent.
        ("", ROUTE + "auth: {send: !!binary AAAA}",
         [("sources[0].auth.send", "a bytes value is not JSON; use a string or a list")]),
        ("", ROUTE + "subscribe: [{send: !!set {a, b}}]",
         [("sources[0].subscribe[0].send", "a set value is not JSON; use a string or a list")]),
        ("", ROUTE + "headers: {Authorization: [Bearer, x]}\n    auth: {send: {token: !!set {a}}}",
         [("sources[0].headers.Authorization", "expected string, got array"),
          ("sources[0].auth.send.token", "a set value is not JSON; use a string or a list")]),
        ('m: {type: mqtt, url: "mqtt://h", password: [pw]}', ROUTE,
         [("sinks.m.password", "expected string, got array")]),
    ],
    ids=["huge-index-in-message", "huge-index-in-topic", "mqtt-url-bracket",
         "mqtt-url-unclosed-ipv6", "binary-message", "set-message", "list-header-and-set-token",
         "list-password"],
)
def test_inputs_fuzzing_found_are_reported_at_their_key(
    tmp_path: Path, sink: str, source: str, problems: list[tuple[str, str]]
) -> None:
    answer = load_or_error(found(tmp_path, sink, source))
    assert isinstance(answer, ConfigError), "the loader accepted a config it must refuse"
    assert [(issue.path, issue.message) for issue in answer.issues] == problems


def test_float_sizes_fuzzing_found_load_as_whole_bytes(tmp_path: Path) -> None:
    # YAML's 0.0 and 1024.0 are integers to JSON Schema, so the loader must accept them as such.
    sink = "f: {type: file, path: /tmp/x.jsonl, max_bytes: 0.0}"
    answer = load_or_error(found(tmp_path, sink, ROUTE + "max_message_size: 1024.0"))
    assert isinstance(answer, Config), answer
    file_sink = answer.sinks["f"]
    assert isinstance(file_sink, FileSinkConfig)
    assert (file_sink.max_bytes, type(file_sink.max_bytes)) == (0, int)
    size = answer.sources[0].max_message_size
    assert (size, type(size)) == (1024, int)


# --- the template renderer ---------------------------------------------------------------------

TEMPLATE_SPECS = st.recursive(
    SCALARS | TEMPLATE_TEXT | st.text(alphabet=st.sampled_from(list("{}[].$_-0123msgqeuxyz")),
                                      max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=10,
)


def render_or_error(template: Template, ctx: Context) -> None:
    try:
        template.render(ctx)
        assert isinstance(template.render_str(ctx, lambda value: value.replace("/", "_")), str)
    except TemplateError as exc:
        assert str(exc)


@FUZZ
@given(spec=TEMPLATE_SPECS, msg=JSON | st.just(INVALID), raw=st.text(max_size=10))
def test_any_template_compiles_or_fails_clearly_and_renders_or_fails_clearly(
    spec: Any, msg: Any, raw: str
) -> None:
    try:
        template = Template(spec)
    except TemplateError as exc:
        assert str(exc)
        return
    counter = iter(range(1, 1000))
    ctx = Context(source="feed", msg=msg, raw=raw, now=1_700_000_000.5,
                  seq=counter.__next__, hostname="host")
    render_or_error(template, ctx)


def test_a_template_index_too_long_for_an_int_is_a_template_error() -> None:
    with pytest.raises(TemplateError):
        Template(HUGE_INDEX)


@FUZZ
@given(text=st.text(max_size=40))
def test_literal_text_renders_as_itself(text: str) -> None:
    # How a secret from ${env:} is kept literal inside a message template.
    assert Template(literal(text)).render(Context()) == text


@FUZZ
@given(value=JSON)
def test_a_lone_placeholder_keeps_the_json_value(value: Any) -> None:
    assert Template("{msg}").render(Context(msg=value)) == value
    assert Template({"wrapped": ["{msg}"]}).render(Context(msg=value)) == {"wrapped": [value]}


# --- the pattern matcher -----------------------------------------------------------------------

@FUZZ
@given(spec=PLAIN, value=JSON | st.just(INVALID))
def test_any_pattern_against_any_value_is_a_bool(spec: Any, value: Any) -> None:
    assert isinstance(Pattern(spec).matches(value), bool)


@FUZZ
@given(spec=OPERATOR_SPECS, value=JSON | st.just(INVALID))
def test_any_operator_pattern_compiles_or_says_where_and_never_raises_on_a_value(
    spec: Any, value: Any
) -> None:
    try:
        pattern = Pattern(spec)
    except PatternError as exc:
        assert exc.problems and all(isinstance(at, tuple) and text for at, text in exc.problems)
        return
    assert isinstance(pattern.matches(value), bool)
    assert isinstance(pattern.matches({"a": value, "b": [value]}), bool)


@FUZZ
@given(spec=PLAIN, value=JSON, key=st.sampled_from(["a", "b"]))
def test_the_compiled_matcher_answers_as_the_matching_rules_do(spec: Any, value: Any,
                                                              key: str) -> None:
    # Patterns are compiled for speed; the rules (_match) stay the reference for what they mean.
    for s, v in [(spec, value), ({key: spec}, {"a": value}), ({"a": spec, "b": 1}, value)]:
        assert Pattern(s).matches(v) is _match(s, v)


@FUZZ
@given(value=PLAIN)
def test_a_json_value_matches_itself(value: Any) -> None:
    assert Pattern(value).matches(value)
    assert not Pattern(value).matches(INVALID)


@st.composite
def value_and_subpattern(draw: st.DrawFn) -> tuple[Any, Any]:
    value = draw(st.dictionaries(PLAIN_KEYS, PLAIN, max_size=5))

    def subset(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        keys = draw(st.lists(st.sampled_from(sorted(node)), unique=True)) if node else []
        return {key: subset(node[key]) for key in keys}

    return value, subset(value)


@FUZZ
@given(pair=value_and_subpattern())
def test_a_sub_dict_of_a_value_matches_it(pair: tuple[Any, Any]) -> None:
    value, pattern = pair
    assert Pattern(pattern).matches(value)


@FUZZ
@given(value=st.dictionaries(PLAIN_KEYS, PLAIN, min_size=1, max_size=4), extra=PLAIN)
def test_a_pattern_with_a_key_the_value_lacks_never_matches(value: dict[str, Any],
                                                            extra: Any) -> None:
    missing = "".join(value) + "!"  # longer than every key, so not one of them
    assert not Pattern({**value, missing: extra}).matches(value)


@pytest.mark.parametrize(
    ("spec", "value"),
    [(True, 1), (1, True), (False, 0), (0.0, False), ({"a": True}, {"a": 1}),
     ([True], [1]), ([0], [False]), ({"a": [1, True]}, {"a": [True, 1]}),
     ([{"on": True}], [{"on": 1}]), ({"ids": [[0]]}, {"ids": [[False]]})],
    ids=["true-1", "1-true", "false-0", "0.0-false", "in-dict", "in-list", "0-in-list",
         "list-in-dict", "dict-in-list", "nested-lists"],
)
def test_json_keeps_booleans_and_numbers_apart_at_every_depth(spec: Any, value: Any) -> None:
    assert not Pattern(spec).matches(value)


def test_nan_never_matches_but_never_crashes() -> None:
    assert not Pattern(math.nan).matches(math.nan)
    assert not Pattern({"x": math.nan}).matches({"x": math.nan})
