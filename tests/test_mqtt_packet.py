"""The bridge's own PUBLISH encoder must produce exactly the bytes gmqtt's encoder produces.

A broker reading a wrong Remaining Length or property length would drop the connection (or worse,
misread the next packet), so every field combination is checked byte for byte against gmqtt,
the library the encoder replaced on the hot path."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from gmqtt import Message
from gmqtt.mqtt.package import PublishPacket
from hypothesis import given
from hypothesis import strategies as st

from bridge.messages import Delivery
from bridge.messages import Message as Frame
from bridge.routing.template import Template
from bridge.sinks import mqtt_packet as packet
from bridge.sinks import mqtt_property_list as plist
from bridge.sinks.mqtt_properties import PropertyBuilder


def reference(topic: str, payload: bytes, qos: int, retain: bool, mid: int | None,
              props: dict[str, Any], version: int) -> bytes:
    ids = SimpleNamespace(next_id=lambda: mid)
    protocol = SimpleNamespace(proto_ver=version, id_generator=ids)
    _, pkt = PublishPacket.build_package(Message(topic, payload, qos, retain, **props), protocol)
    return bytes(pkt)


def ours(topic: str, payload: bytes, qos: int, retain: bool, mid: int | None,
         props: dict[str, Any], version: int) -> bytes:
    extra = b"" if version == 4 else plist.properties(props) if props else packet.NO_PROPERTIES
    return packet.publish(packet.str16(topic), payload, extra, qos=qos, retain=retain, mid=mid)


PROPS = st.fixed_dictionaries({}, optional={
    "message_expiry_interval": st.integers(1, 2**32 - 1),
    "content_type": st.sampled_from(["application/json", "text/plain"]),
    "response_topic": st.text(alphabet="abc/", min_size=1, max_size=20),
    "correlation_data": st.binary(max_size=40),
    "user_property": st.lists(st.tuples(st.text(max_size=10), st.text(max_size=300)),
                              min_size=1, max_size=4),
})


@given(topic=st.text(alphabet="abcxyz/_-0123456789", min_size=1, max_size=60),
       payload=st.binary(max_size=400), qos=st.integers(0, 2), retain=st.booleans(),
       props=PROPS, version=st.sampled_from([4, 5]))
def test_every_field_combination_matches_gmqtt(topic: str, payload: bytes, qos: int,
                                               retain: bool, props: dict[str, Any],
                                               version: int) -> None:
    mid = 4321 if qos else None
    assert ours(topic, payload, qos, retain, mid, props, version) == \
        reference(topic, payload, qos, retain, mid, props, version)


@pytest.mark.parametrize("length", [11, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
def test_remaining_length_boundaries_match_gmqtt(length: int) -> None:
    # A Remaining Length on each side of each step to a longer Variable Byte Integer.
    props = {"message_expiry_interval": 60}
    overhead = len(ours("t", b"", 1, False, 7, props, 5)) - 2  # topic, packet id, properties
    payload = b"x" * (length - overhead)
    assert len(ours("t", payload, 1, False, 7, props, 5)) - len(packet.varint(length)) - 1 == length
    expected = reference("t", payload, 1, False, 7, props, 5)
    assert ours("t", payload, 1, False, 7, props, 5) == expected


def test_non_ascii_topics_count_bytes_not_characters() -> None:
    # MQTT counts the bytes of a string, not its characters.
    pkt = ours("ü/温度", b"1", 0, False, None, {}, 4)
    topic = "ü/温度".encode()
    assert pkt == bytes([0x30, 2 + len(topic) + 1]) + len(topic).to_bytes(2, "big") + topic + b"1"


def test_too_large_for_mqtt_is_a_clear_error() -> None:
    huge = bytes(packet.MAX_REMAINING - 2)  # with the 3-byte topic: one byte over
    with pytest.raises(ValueError, match="over MQTT's limit"):
        packet.publish(packet.str16("t"), huge, b"", qos=0, retain=False, mid=None)
    assert len(packet.publish(packet.str16("t"), huge[1:], b"", qos=0, retain=False, mid=None))
    with pytest.raises(ValueError, match="65535"):
        packet.str16("x" * 65_536)


def test_topics_are_encoded_once_and_bounded() -> None:
    topics = packet.Topics()
    first = topics["a/b"]
    assert topics["a/b"] is first
    for i in range(10_001):
        topics[f"t/{i}"]
    assert len(topics) <= 10_000


def test_a_clock_property_follows_each_message_time() -> None:
    # {now_ms} is rendered once per millisecond: a cache that must never serve a stale time.
    build = PropertyBuilder(None, {"at": Template("{now_ms}"), "by": Template("{source}")}, "h")

    def at(t: float) -> bytes:
        return build(Delivery(Frame("src", "x", t), "x"))

    first = at(1.0)
    assert plist.user_property("at", "1000") in first
    assert plist.user_property("by", "src") in first
    assert at(1.0004) == first  # the same millisecond
    assert plist.user_property("at", "1002") in at(1.002)
    assert plist.user_property("at", "1000") in at(1.0)  # back again: no stale value either
    # the whole list is kept per millisecond: another source, or a JSON payload, is not served it
    other = build(Delivery(Frame("other", "x", 1.0), "x"))
    assert plist.user_property("by", "other") in other and other != first
    as_json = build(Delivery(Frame("src", "{}", 1.0), "{}"))
    assert plist.prop("content_type", "application/json") in as_json
    assert at(1.0) == first
