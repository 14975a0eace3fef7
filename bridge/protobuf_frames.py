"""Protobuf frames decoded to JSON values: the only importer of the protobuf library.

A descriptor set (``protoc --include_imports --descriptor_set_out=FILE``) describes the
messages; one of them is each frame's type. The library's errors are translated here, once:
a bad descriptor set or an unknown message name is a ``ValueError`` (a config problem), a
frame that does not parse is ``Undecodable`` with the reason ``protobuf``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message

from bridge.inflate import Undecodable

Decode = Callable[[bytes], Any]


def protobuf_decoder(descriptor_set: bytes, name: str) -> Decode:
    """The function that decodes a frame of message type ``name`` (its full name, or its
    short name when only one message has it) into a JSON value, field names as in the
    ``.proto`` file. Raises ValueError for a bad descriptor set or an unknown name."""
    pool = descriptor_pool.DescriptorPool()
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
        for proto in files:
            pool.Add(proto)
    except (DecodeError, TypeError, KeyError, ValueError) as exc:
        why = str(exc).strip() or type(exc).__name__
        raise ValueError(f"not a descriptor set (protoc --descriptor_set_out): {why}") from None
    full = _full_name(files, name)
    try:
        cls: type[Message] = message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
    except KeyError:
        known = sorted(_names(files))
        listing = ", ".join(known[:8]) + (" ..." if len(known) > 8 else "")
        raise ValueError(f"no message {name!r} in the descriptor set; it has: {listing}") from None

    def decode(data: bytes) -> Any:
        try:
            parsed = cls.FromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:  # RuntimeError: recursion
            raise Undecodable("protobuf", f"not a {full}: {exc}") from None
        return json_format.MessageToDict(parsed, preserving_proto_field_name=True)

    return decode


def _names(files: Any) -> list[str]:
    """The full names of the top-level messages."""
    return [f"{f.package}.{m.name}" if f.package else m.name
            for f in files for m in f.message_type]


def _full_name(files: Any, name: str) -> str:
    matches = [full for full in _names(files) if full == name or full.endswith("." + name)]
    return matches[0] if len(matches) == 1 else name
