"""Reads a config file into a typed Config, or raises ConfigError listing every problem in it."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from bridge.config.build_config import build_config
from bridge.config.checks import check, reject_warnings
from bridge.config.collect import Collector
from bridge.config.credentials import find_secrets
from bridge.config.explain import explain
from bridge.config.exposure import exposure_warnings, secret_file_warnings
from bridge.config.keypaths import KeyPath, dotted
from bridge.config.marks import MarkedDict, MarkedList, RecursiveAlias, containers, locate, plain
from bridge.config.model import Config
from bridge.config.resolve_doc import resolve_document
from bridge.errors import ConfigError, ConfigIssue
from bridge.redaction import redact

_MERGE = "tag:yaml.org,2002:merge"
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Loader(yaml.SafeLoader):
    """A safe loader whose mappings and sequences carry marks, so errors point at FILE:LINE:COL."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[MarkedDict]:
    data = MarkedDict()
    yield data
    own = sum(1 for key, _ in node.value if key.tag != _MERGE)
    loader.flatten_mapping(node)  # merged (`<<`) keys come first; the mapping's own keys win
    seen: set[str] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node)
        if not isinstance(key, str):
            data.problems.append((str(key), f"the key {key!r} is not a string; quote it"))
            key = str(key)
        if index >= len(node.value) - own:
            if key in seen:
                data.problems.append((key, f"duplicate key '{key}'; only the last would count"))
            seen.add(key)
        data[key] = loader.construct_object(value_node)
        data.marks[key] = (key_node.start_mark.line, key_node.start_mark.column)


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> Iterator[MarkedList]:
    data = MarkedList()
    yield data
    for child in node.value:
        data.append(loader.construct_object(child))
        data.marks.append((child.start_mark.line, child.start_mark.column))


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    # Python refuses to convert more than 4300 digits; say so at the number, in our words.
    try:
        return int(loader.construct_yaml_int(node))
    except ValueError:
        why = f"a number of {len(node.value)} digits is too long for any setting"
        raise yaml.constructor.ConstructorError(problem=why, problem_mark=node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)
_Loader.add_constructor("tag:yaml.org,2002:int", _int)
# JSON has no dates, and Home Assistant states are "on"/"off": as in YAML 1.2, only true/false
# are booleans, and dates stay strings.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: node.value)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file."""
    text = resources.files("bridge.config").joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Any:
    return Draft202012Validator(load_schema())


def _parse(file: str) -> tuple[Any, list[tuple[KeyPath, Any]]]:
    """The document and its containers; unreadable files and bad YAML raise ConfigError."""
    text, line, column = "", 1, 1
    try:
        text = Path(file).read_text(encoding="utf-8")
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506
        return doc, containers(doc)
    except (OSError, UnicodeDecodeError) as exc:
        why = f"cannot read the file: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}"
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        why = "YAML: " + "; ".join(str(part) for part in (exc.context, exc.problem) if part)
    except (yaml.YAMLError, RecursiveAlias, RecursionError, ValueError) as exc:
        # A control character (at its position), a recursive alias, nesting too deep.
        before = text[: getattr(exc, "position", 0)]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        deep = isinstance(exc, RecursionError)
        why = "YAML: " + ("nested too deeply" if deep else str(exc).partition("\n")[0])
    raise ConfigError([ConfigIssue(file, line, column, "", why)])


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """The validated, typed config in ``path``; ``env`` defaults to ``os.environ``.

    Raises ConfigError with every problem found (syntax, schema, semantics), each at
    FILE:LINE:COL; no message contains a secret.
    """
    file = str(path)
    doc, nodes = _parse(file)
    if doc is None:
        raise ConfigError([ConfigIssue(file, 1, 1, "", "the file is empty; see ws-bridge schema")])
    base = Path(path).parent  # relative paths in the config are read from its directory
    c = Collector(lambda name: (base / Path(name).expanduser()).read_bytes())
    failed = set[KeyPath]()  # where the YAML itself failed: a schema error there would repeat it
    for where, node in nodes:
        for key, message in getattr(node, "problems", []):
            c.add((*where, key), message)
            failed.add((*where, key))
    env = os.environ if env is None else env
    inline = find_secrets(doc)  # before resolving, so that ${...} texts tell placeholders apart
    modes: dict[str, int] = {}  # each file read by ${file:}, and who may read it
    secrets = resolve_document(
        doc, nodes, env, _reader(base, modes), report=c.add, failed=failed)
    invalid = {p: m for error in _validator().iter_errors(doc) for p, m in explain(error)}
    for where, message in invalid.items():
        if where not in failed:
            c.add(where, message)
    check(doc, c.add)
    config = build_config(
        file, plain(doc), c, set(invalid), frozenset(secrets), hostname=socket.gethostname(),
        read=_reader(Path(path).parent),
    )
    if c.found:
        issues = set()
        for where, message in c.found:
            text = redact(message, secrets)
            issues.add(ConfigIssue(file, *locate(doc, where), dotted(where), text))
        raise ConfigError(sorted(issues, key=lambda i: (i.line, i.column, i.path, i.message)))
    exposed = exposure_warnings(file, Path(file).stat().st_mode, inline)
    exposed += secret_file_warnings(modes)
    return replace(config, warnings=exposed + reject_warnings(doc))


def _reader(base: Path, modes: dict[str, int] | None = None) -> Callable[[str], str]:
    """Reads a file the config names; a relative path is read from the config's directory.
    With ``modes``, notes each file's permission bits there (by the name it was given)."""

    def read(name: str) -> str:
        path = base / Path(name).expanduser()
        text = path.read_text(encoding="utf-8")
        if modes is not None:
            modes[name] = path.stat().st_mode
        return text

    return read

