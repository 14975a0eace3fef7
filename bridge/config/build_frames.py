"""Builds a source's ``frames`` settings: its regex compiled and its protobuf descriptor set
read and checked at load, so that a mistake is a ``check`` error, not a failure at run time."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath
from bridge.frames import FramesSpec, ProtobufSpec


def build_frames(raw: dict[str, Any] | None, path: KeyPath, c: Collector) -> FramesSpec | None:
    """The ``frames`` of one source (None when absent); problems go to ``c``."""
    if raw is None:
        return None
    proto = raw.get("protobuf")
    return FramesSpec(
        binary=raw.get("binary", "bytes"),
        forward=raw.get("forward", "decoded"),
        split=raw.get("split"),
        extract=_extract(raw.get("extract"), (*path, "extract"), c),
        protobuf=None if proto is None else _protobuf(proto, (*path, "protobuf"), c),
    )


def _extract(spec: str | None, where: KeyPath, c: Collector) -> re.Pattern[str] | None:
    if spec is None:
        return None
    try:
        regex = re.compile(spec)
    except re.error as exc:
        c.add(where, f"not a regular expression: {exc}")
        return None
    if "json" not in regex.groupindex:
        c.add(where, "has no group named json: write (?P<json>...) around the message's JSON")
        return None
    return regex


def _protobuf(raw: dict[str, Any], where: KeyPath, c: Collector) -> ProtobufSpec | None:
    # Imported here: the protobuf library (about 6 MB resident) loads only for a config that
    # decodes protobuf frames.
    from bridge.protobuf_frames import protobuf_decoder  # noqa: PLC0415

    name, message = raw["descriptor"], raw["message"]
    try:
        if c.read is None:
            raise OSError(f"no file reader given for {name}")
        data = c.read(name)
    except OSError as exc:
        c.add((*where, "descriptor"), f"cannot read {name}: {exc.strerror or exc}")
        return None
    try:
        decode = protobuf_decoder(data, message)
    except ValueError as exc:
        field = "message" if str(exc).startswith("no message") else "descriptor"
        c.add((*where, field), str(exc))
        return None
    return ProtobufSpec(name, message, hashlib.sha256(data).hexdigest(), decode)
