"""``batch``: a route's payloads gathered into one JSON array, sans-I/O (the caller passes
``now``): it closes at ``max`` elements, ``within`` seconds after it opened, or on flush."""

from __future__ import annotations


class Batch:
    def __init__(self, size: int, within: float) -> None:
        self.size, self.within = size, within
        self.received_at = 0.0  # of the latest element's message: the batch's own time
        self._elements: list[str] = []
        self._due: float | None = None
        self.armed = False  # a batch opened: a deadline appeared

    def add(self, element: str, received_at: float, now: float) -> str | None:
        """Add one element (a JSON text); the whole batch when it is full, else None."""
        if not self._elements:
            self._due, self.armed = now + self.within, True
        self._elements.append(element)
        self.received_at = received_at
        return self.take() if len(self._elements) >= self.size else None

    def deadline(self) -> float | None:
        return self._due

    def due(self, now: float) -> str | None:
        return self.take() if self._due is not None and now >= self._due else None

    def take(self) -> str | None:
        """The open batch as one JSON array, or None when there is none."""
        if not self._elements:
            return None
        text = "[" + ",".join(self._elements) + "]"
        self._elements, self._due = [], None
        return text
