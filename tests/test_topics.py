"""MQTT topic-filter semantics of the websocket sink's subscriptions."""

from __future__ import annotations

import pytest

from bridge.routing.topics import filter_problem, topic_matches


@pytest.mark.parametrize(
    ("topic_filter", "topic"),
    [
        ("feeds/btc/trades", "feeds/btc/trades"),
        ("feeds/+/trades", "feeds/btc/trades"),
        ("feeds/+/trades", "feeds//trades"),  # an empty level is still one level
        ("+/+", "/finance"),
        ("feeds/#", "feeds"),  # '#' includes the parent level
        ("feeds/#", "feeds/btc"),
        ("feeds/#", "feeds/btc/trades/extra"),
        ("#", "anything/at/all"),
        ("+", "binance"),  # a source name used as the topic
        ("$SYS/#", "$SYS/broker/load"),
    ],
)
def test_a_filter_matches_the_topics_an_mqtt_broker_would_deliver(
    topic_filter: str, topic: str
) -> None:
    assert filter_problem(topic_filter) is None
    assert topic_matches(topic_filter, topic)


@pytest.mark.parametrize(
    ("topic_filter", "topic"),
    [
        ("feeds/btc/trades", "feeds/eth/trades"),
        ("feeds/+/trades", "feeds/btc/book"),
        ("feeds/+/trades", "feeds/btc/trades/extra"),
        ("feeds/+", "feeds"),  # '+' needs a level to match
        ("feeds/+", "feeds/btc/trades"),
        ("feeds/#", "feedsx/btc"),
        ("feeds", "feeds/btc"),
        ("Feeds/#", "feeds/btc"),  # topics are case-sensitive
        ("#", "$SYS/broker/load"),  # wildcards at the start never match '$' topics
        ("+/broker/load", "$SYS/broker/load"),
    ],
)
def test_a_filter_does_not_match_other_topics(topic_filter: str, topic: str) -> None:
    assert not topic_matches(topic_filter, topic)


@pytest.mark.parametrize(
    ("topic_filter", "why"),
    [
        ("", "empty"),
        ("feeds/#/trades", "'#'"),
        ("feeds/btc#", "'#'"),
        ("feeds/b+c", "'+'"),
        ("feeds/\0", "NUL"),
        ("x" * 70_000, "bytes"),
    ],
)
def test_invalid_filters_are_explained(topic_filter: str, why: str) -> None:
    problem = filter_problem(topic_filter)
    assert problem is not None and why in problem


def test_an_invalid_filter_with_a_misplaced_hash_matches_nothing_below_it() -> None:
    assert not topic_matches("feeds/#/trades", "feeds/btc/trades")
