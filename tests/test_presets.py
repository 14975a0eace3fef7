"""The protocol presets without servers: the plain YAML each stands for (as the README shows
it), their frames decoded (and garbage never crashing them), the session answering pings and
refusing, and the config errors a user can make with them."""

from __future__ import annotations

import gzip
import json
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.load import load_config
from bridge.config.model import SourceConfig
from bridge.errors import AuthRejected, ConfigError, OperationTooBig, Rejected
from bridge.frames import FrameDecoder, FramesSpec
from bridge.inflate import Undecodable
from bridge.messages import Message
from bridge.protocols import graphql, socketio, stomp
from bridge.protocols.nats_stream import Stream
from bridge.protocols.wire import PresetFrames
from bridge.upstream.actions import Action, Deliver, Fail, Send
from bridge.upstream.session import Session

README = Path(__file__).resolve().parents[1] / "README.md"
SESSION_FIELDS = ("auth", "subscribe", "unsubscribe", "replies", "heartbeat", "subprotocols")


def sources(tmp_path: Path, fragment: str, env: dict[str, str] | None = None
            ) -> tuple[SourceConfig, ...]:
    path = tmp_path / "bridge.yaml"
    path.write_text("version: 1\nsinks:\n  out: {type: stdout}\nsources:\n"
                    + textwrap.indent(textwrap.dedent(fragment), "  "))
    return load_config(path, env=env or {}).sources


def issues(tmp_path: Path, fragment: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        sources(tmp_path, fragment)
    return [f"{i.path}: {i.message}" for i in caught.value.issues]


# --- each preset is the plain YAML the README shows ---------------------------------------------

def readme_pairs() -> list[tuple[str, str]]:
    section = README.read_text().split("## Protocol presets", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 8, "a preset and its plain YAML, for each of the four presets"
    return list(zip(blocks[::2], blocks[1::2], strict=True))


@pytest.mark.parametrize("preset, plain", readme_pairs(), ids=["socketio", "graphql", "stomp",
                                                              "nats"])
def test_each_preset_is_the_plain_yaml_the_readme_shows(
    tmp_path: Path, preset: str, plain: str
) -> None:
    ours, theirs = sources(tmp_path, preset)[0], sources(tmp_path, plain)[0]
    assert ours.protocol is not None and theirs.protocol is None
    for name in SESSION_FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name


def test_every_preset_has_an_example_config() -> None:
    configs = README.parent / "configs"
    for name, kind in (("socketio", "socketio"), ("graphql", "graphql-ws"), ("stomp", "stomp"),
                       ("nats", "nats")):
        cfg = load_config(configs / f"{name}.yaml", env={}).sources[0]
        assert cfg.protocol is not None and cfg.protocol.type == kind
        assert cfg.subscribe and cfg.unsubscribe


# --- frames -------------------------------------------------------------------------------------

def test_socketio_frames() -> None:
    assert socketio.decode('42["tick",{"symbol":"a","n":1}]') == [
        ({"event": "tick", "data": {"symbol": "a", "n": 1}, "args": [{"symbol": "a", "n": 1}]},
         True)]
    assert socketio.decode('42/feed,7["two",1,2]') == [
        ({"event": "two", "data": 1, "args": [1, 2]}, True)]
    assert socketio.decode("2") == [({"engineio": "ping"}, False)]
    assert socketio.decode('0{"sid":"x","pingInterval":25000}')[0][0]["engineio"] == "open"
    assert socketio.decode('44{"message":"bad token"}') == [
        ({"socketio": "connect_error", "namespace": "/", "message": "bad token"}, False)]
    assert socketio.decode("40/feed,")[0][0] == {"socketio": "connect", "namespace": "/feed"}


def test_graphql_frames() -> None:
    assert graphql.decode('{"id":"1","type":"next","payload":{"data":{"count":3}}}') == [
        ({"id": "1", "data": {"count": 3}, "errors": None}, True)]
    assert graphql.decode('{"type":"ping"}') == [({"type": "ping"}, False)]


def test_stomp_frames() -> None:
    text = ("MESSAGE\nsubscription:1\ndestination:/topic/t\nmessage-id:a\\cb\n"
            'content-type:application/json\n\n{"n":1}\x00\n')
    [(message, data)] = stomp.decode(text)
    assert data and message["body"] == {"n": 1} and message["destination"] == "/topic/t"
    assert message["headers"]["message-id"] == "a:b"  # STOMP 1.2 escapes undone
    assert stomp.decode("\n") == [({"stomp": "heartbeat"}, False)]
    [(error, data)] = stomp.decode("ERROR\nmessage:Bad CONNECT\n\nAccess refused\x00")
    assert not data and error["stomp"] == "ERROR" and error["body"] == "Access refused"
    assert stomp.decode("MESSAGE\ndestination:/q\n\nplain text\x00")[0][0]["body"] == "plain text"


def test_nats_frames_several_operations_in_one() -> None:
    frame = b'MSG ticks.a 1 7\r\n{"n":1}\r\nPING\r\nMSG ticks.b 1 _INBOX.x 2\r\nhi\r\n'
    assert Stream("src").feed(frame) == [
        ({"subject": "ticks.a", "reply": None, "data": {"n": 1}}, True),
        ({"nats": "PING"}, False),
        ({"subject": "ticks.b", "reply": "_INBOX.x", "data": "hi"}, True),
    ]
    assert Stream("src").feed(b"-ERR 'Authorization Violation'\r\n") == [
        ({"nats": "-ERR", "error": "Authorization Violation"}, False)]
    hmsg = b"HMSG s 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    assert Stream("src").feed(hmsg) == [({"subject": "s", "reply": None, "data": "hi"}, True)]


@pytest.mark.parametrize("forward", ["decoded", "raw"])
def test_a_preset_reads_what_the_sources_frames_settings_decoded(forward: str) -> None:
    inner = FrameDecoder(FramesSpec(binary="gzip", forward=forward), "src", 1 << 20)
    frames = PresetFrames("nats", "src", inner)
    [msg] = frames.decode(gzip.compress(b'MSG a 1 7\r\n{"n":1}\r\n'), 0.0)
    assert isinstance(msg, Message) and msg.json == {"subject": "a", "reply": None,
                                                     "data": {"n": 1}}
    assert json.loads(msg.data) == msg.json  # what the sinks receive: the message as JSON


@given(st.one_of(st.text(), st.binary()))
def test_garbage_never_crashes_a_preset_decoder(frame: str | bytes) -> None:
    for kind in ("socketio", "graphql-ws", "stomp", "nats"):
        try:
            items = PresetFrames(kind, "src").decode(frame, 0.0)
        except OperationTooBig:  # NATS: a message too big to keep across frames, renewed
            assert kind == "nats"
            continue
        for item in items:
            if isinstance(item, Undecodable):
                assert item.reason == kind.removesuffix("-ws")
            else:
                assert isinstance(item, Message)
                _ = item.json


@pytest.mark.parametrize("kind, frame", [
    ("socketio", "9what"), ("socketio", '42{"not":"an array"}'), ("graphql-ws", "[1,2]"),
    ("stomp", "HELLO\n\n\0"), ("nats", b"MSG a 1 x\r\nshort\r\n"), ("nats", b"WHAT\r\n"),
])
def test_a_frame_that_breaks_the_protocol_is_counted_as_undecodable(
    tmp_path: Path, kind: str, frame: str | bytes
) -> None:
    [item] = PresetFrames(kind, "src").decode(frame, 0.0)
    assert isinstance(item, Undecodable)
    session = Session(sources(tmp_path, NATS)[0])
    session.undecodable(item, Message("src", frame, 0.0), 1.0)
    assert session.stats.undecodable == {item.reason: 1}


# --- the session with a preset ------------------------------------------------------------------

NATS = """\
- name: src
  url: ws://127.0.0.1:1
  protocol: {type: nats, token: T}
  subscribe: [{subject: ticks.>}]
"""


def feed(session: Session, kind: str, frame: str | bytes) -> list[Action]:
    out: list[Action] = []
    for msg in PresetFrames(kind, "src").decode(frame, 0.0):
        assert not isinstance(msg, Undecodable)
        out += session.receive(msg, 1.0)
    return out


def texts(actions: list[Action]) -> list[str]:
    return [a.data for a in actions if isinstance(a, Send)]


def test_nats_session_connects_answers_pings_and_delivers_only_data(tmp_path: Path) -> None:
    session = Session(sources(tmp_path, NATS)[0])
    assert texts(session.start(0.0)) == []  # waits for INFO
    connect = texts(feed(session, "nats", b'INFO {"server_id":"x"}\r\n'))
    assert connect[0].startswith("CONNECT {") and connect[0].endswith("\r\nPING\r\n")
    assert json.loads(connect[0][8:].split("\r\n")[0])["auth_token"] == "T"
    assert texts(feed(session, "nats", b"PONG\r\n")) == ["SUB ticks.> 1\r\n"]
    out = feed(session, "nats", b'PING\r\nMSG ticks.a 1 7\r\n{"n":1}\r\n')
    assert texts(out) == ["PONG\r\n"]
    assert [json.loads(a.msg.data) for a in out if isinstance(a, Deliver)] == [
        {"subject": "ticks.a", "reply": None, "data": {"n": 1}}]
    assert texts(session.stop(2.0)) == ["UNSUB 1\r\n"]


def test_a_refusal_after_connecting_fails_with_the_servers_words(tmp_path: Path) -> None:
    session = Session(sources(tmp_path, NATS)[0])
    session.start(0.0)
    feed(session, "nats", b"INFO {}\r\n")
    feed(session, "nats", b"PONG\r\n")
    [fail] = [a for a in feed(session, "nats", b"-ERR 'Slow Consumer'\r\n") if isinstance(a, Fail)]
    assert type(fail.error) is Rejected
    assert fail.error.detail == "connection rejected by the server: -ERR 'Slow Consumer'\\r\\n"


def test_socketio_session_answers_ping_and_reports_the_refusal(tmp_path: Path) -> None:
    session = Session(sources(tmp_path, """\
        - name: src
          url: ws://127.0.0.1:1
          protocol: {type: socketio, namespace: /feed, auth: {token: T}}
          subscribe: [{emit: join, data: room1}]
        """)[0])
    session.start(0.0)
    assert texts(feed(session, "socketio", '0{"sid":"a"}')) == ['40/feed,{"token":"T"}']
    [fail] = [a for a in feed(session, "socketio", '44/feed,{"message":"bad token"}')
              if isinstance(a, Fail)]
    assert isinstance(fail.error, AuthRejected)
    assert fail.error.detail.endswith('44/feed,{"message":"bad token"}')
    session.lost(fail.error, "auth_rejected", retry=True)
    session.connecting()
    session.start(1.0)
    feed(session, "socketio", '0{"sid":"b"}')
    assert texts(feed(session, "socketio", "40/feed,")) == ['42/feed,["join","room1"]']
    assert texts(feed(session, "socketio", "2")) == ["3"]
    assert not [a for a in feed(session, "socketio", "2") if isinstance(a, Deliver)]


def test_stomp_session_keeps_the_heartbeat_and_disconnects_on_stop(tmp_path: Path) -> None:
    session = Session(sources(tmp_path, """\
        - name: src
          url: ws://127.0.0.1:1
          protocol: {type: stomp, login: guest, passcode: P, heartbeat: 4s}
          subscribe: [{destination: /queue/a}]
        """)[0])
    [connect] = texts(session.start(0.0))
    assert connect.startswith("CONNECT\n") and "heart-beat:4000,4000\n" in connect
    subscribe = texts(feed(session, "stomp", "CONNECTED\nversion:1.2\n\n\0\n"))
    assert subscribe == ["SUBSCRIBE\nid:1\ndestination:/queue/a\nack:auto\n\n\0"]
    assert feed(session, "stomp", "\n") == []  # the server's heart-beat: heard, not routed
    assert session.deadline() == 1.0 + 2.0  # connected at 1.0; half the promised interval
    assert texts(session.tick(3.0)) == ["\n"]
    out = feed(session, "stomp", "MESSAGE\ndestination:/queue/a\n\n[1]\0")
    assert [json.loads(a.msg.data) for a in out if isinstance(a, Deliver)] == [
        {"destination": "/queue/a", "headers": {"destination": "/queue/a"}, "body": [1]}]
    assert texts(session.stop(4.0)) == ["UNSUBSCRIBE\nid:1\n\n\0", "DISCONNECT\n\n\0"]


def test_graphql_query_braces_are_literal_and_ids_assigned(tmp_path: Path) -> None:
    cfg = sources(tmp_path, """\
        - name: src
          url: ws://127.0.0.1:1
          protocol: {type: graphql-ws}
          subscribe: [{query: "subscription { a }"}, {query: "subscription { b(x: 1) }"}]
        """)[0]
    session = Session(cfg)
    assert json.loads(texts(session.start(0.0))[0]) == {"type": "connection_init"}
    subs = [json.loads(t) for t in texts(feed(session, "graphql-ws", '{"type":"connection_ack"}'))]
    assert subs == [
        {"id": "1", "type": "subscribe", "payload": {"query": "subscription { a }"}},
        {"id": "2", "type": "subscribe", "payload": {"query": "subscription { b(x: 1) }"}},
    ]
    assert texts(feed(session, "graphql-ws", '{"type":"ping"}')) == ['{"type":"pong"}']


# --- config errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol, message", [
    ("", "without a protocol preset, a subscribe entry needs send: (the message)"),
    ("protocol: {type: socketio}",
     "protocol socketio subscribes with emit: write {emit: ...}, or send: (the message)"),
], ids=["no preset", "another preset"])
def test_a_subscribe_form_the_source_does_not_speak_is_an_error(
    tmp_path: Path, protocol: str, message: str
) -> None:
    found = issues(tmp_path, f"""\
        - name: src
          url: ws://127.0.0.1:1
          subscribe: [{{subject: ticks.>}}]
          {protocol}
        """)
    assert found == [f"sources[0].subscribe[0]: {message}"]


def test_another_presets_setting_and_a_doubled_auth_are_errors(tmp_path: Path) -> None:
    found = issues(tmp_path, """\
        - name: src
          url: ws://127.0.0.1:1
          protocol: {type: nats, namespace: /x}
          auth: {send: hello}
        """)
    assert set(found) == {
        "sources[0].auth: protocol nats sets auth itself: remove one of them",
        "sources[0].protocol.namespace: not a setting of protocol nats; it takes token, user, "
        "pass",
    }


def test_protocol_credentials_are_secrets(tmp_path: Path) -> None:
    found = issues(tmp_path, """\
        - name: src
          url: ws://feed.example.com:8080
          protocol: {type: nats, token: lit3ral-t0ken}
        """)
    assert any("the protocol's credentials" in f for f in found), found
    assert not any("lit3ral-t0ken" in f for f in found)
