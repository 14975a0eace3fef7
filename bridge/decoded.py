"""A message that ``frames`` cut or decoded from a frame: what the sinks get, what its JSON is
read from and what text operators read can each differ from the frame as received."""

from __future__ import annotations

from typing import Any

from bridge.decoding import decode_json
from bridge.messages import UNPARSED, Message


class Decoded(Message):
    """``data`` is what the sinks receive (``forward``), ``body`` what the JSON is read from
    (text, or a value decoded already), ``text`` the frame's text after decompression and
    ``groups`` what ``{match.NAME}`` reads (the named groups of ``extract``)."""

    __slots__ = ("_body", "_groups", "_text")

    def __init__(self, source: str, data: str | bytes, received_at: float, body: Any, *,
                 text: str | None, groups: dict[str, str] | None = None) -> None:
        super().__init__(source, data, received_at)
        self._body, self._text, self._groups = body, text, groups
        if not isinstance(body, str):
            self._json = body  # decoded already (protobuf, or JSON null: an empty json group)

    @property
    def json(self) -> Any:
        if self._json is UNPARSED:
            self._json = decode_json(self._body)
        return self._json

    @property
    def text(self) -> str | None:
        return self._text

    @property
    def match(self) -> dict[str, str] | None:
        return self._groups
