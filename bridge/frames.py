"""Frames beyond JSON: how a source's frames become messages, once, before its session.

A binary frame is decompressed and read as text, or decoded from protobuf; text is cut at a
separator into several messages (``split``), and each is read through a regex whose group
``json`` is the message (``extract``). What cannot be decoded comes out as ``Undecodable``,
with its reason, in the place of the message it would have been."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.decoded import Decoded
from bridge.inflate import Binary, Undecodable, unpack, utf8
from bridge.messages import Message

Forward = Literal["decoded", "raw"]


@dataclass(frozen=True, slots=True)
class ProtobufSpec:
    """``descriptor``: the descriptor set's path; ``digest``: its content's hash, so that a
    reload sees a changed file; ``decode``: a frame to a JSON value (raises Undecodable)."""
    descriptor: str
    message: str
    digest: str
    decode: Callable[[bytes], Any] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FramesSpec:
    binary: Binary = "bytes"
    forward: Forward = "decoded"
    split: str | None = None
    extract: re.Pattern[str] | None = None  # has a group named json
    protobuf: ProtobufSpec | None = None


class FrameDecoder:
    """One source's frames to its messages (``decode``); ``limit`` bounds decompression."""

    __slots__ = ("_binary", "_extract", "_proto", "_raw", "_source", "_split", "limit")

    def __init__(self, spec: FramesSpec, source: str, limit: int) -> None:
        self._source, self.limit, self._binary = source, limit, spec.binary
        self._raw, self._split, self._extract = spec.forward == "raw", spec.split, spec.extract
        self._proto = None if spec.protobuf is None else spec.protobuf.decode

    def fresh(self) -> FrameDecoder:
        """The decoding of a new connection: the same, each frame is read alone."""
        return self

    def decode(self, frame: str | bytes, at: float) -> list[Message | Undecodable]:
        """The messages ``frame`` holds, received at ``at`` (wall time), in order."""
        if isinstance(frame, str):
            text = frame
        elif self._binary == "bytes" and self._proto is None:
            return [Message(self._source, frame, at)]
        else:
            try:
                data = unpack(frame, self._binary, self.limit)
                if self._proto is not None:
                    value = self._proto(data)
                    out = frame if self._raw else json.dumps(value, separators=(",", ":"))
                    return [Decoded(self._source, out, at, value, text=None)]
                text = utf8(data)
            except Undecodable as exc:
                return [exc]
        if self._split is None:
            return [self._one(text, frame, at)]
        return [self._one(part, part, at) for part in text.split(self._split) if part]

    def _one(self, text: str, raw: str | bytes, at: float) -> Message | Undecodable:
        """One message: its text read through ``extract``, if set."""
        if self._extract is None:  # the decoded text is the message: a plain one, cheaper
            return Decoded(self._source, raw, at, text, text=text) if self._raw else \
                Message(self._source, text, at)
        found = self._extract.search(text)
        if found is None:
            return Undecodable("extract", f"{self._extract.pattern!r} does not match", text)
        groups = {k: v for k, v in found.groupdict().items() if k != "json" and v is not None}
        body = found.group("json")
        if not body:  # no JSON in it (a bare "2"): the message is null, its text is all
            out, value = raw if self._raw else text, None
        else:
            out, value = raw if self._raw else body, body
        return Decoded(self._source, out, at, value, text=text, groups=groups)
