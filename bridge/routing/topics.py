"""MQTT topic filters (``+`` one level, ``#`` the rest): which are valid, and which topics they
match. The websocket sink's subscriptions, the MQTT sink's inbound routing and the config check
of ``publish[].from.topic`` share one reading of the spec."""

from __future__ import annotations

MAX_FILTER_LENGTH = 65535  # MQTT's limit on a topic filter, in UTF-8 bytes


def filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid MQTT topic filter, or None when it is."""
    if not topic_filter:
        return "a topic filter cannot be empty"
    if len(topic_filter.encode()) > MAX_FILTER_LENGTH:
        return f"a topic filter has at most {MAX_FILTER_LENGTH} bytes"
    if "\0" in topic_filter:
        return "a topic filter cannot contain NUL"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` the way an MQTT broker decides it.

    ``+`` matches exactly one level (which may be empty), ``#`` matches the parent level and
    every level below it, and a wildcard in the first level never matches a ``$`` topic.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(wanted):
        if level == "#":
            return i == len(wanted) - 1
        if i >= len(levels) or (level != "+" and level != levels[i]):
            return False
    return len(wanted) == len(levels)
