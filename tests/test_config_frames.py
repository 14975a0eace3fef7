"""The config of frames beyond JSON, and of the text that goes with them: each mistake is a
`check` error at its key, and braces meant literally get the escape suggested."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.frames import FramesSpec
from tests.test_config import MINIMAL, at, issues, load, only
from tests.test_frames import PROTO, descriptor  # noqa: F401 - a fixture

FRAMES = MINIMAL.replace("    routes:", "    frames: {FRAMES}\n    routes:")


def with_frames(frames: str) -> str:
    return FRAMES.replace("{FRAMES}", frames)


def test_frames_load_with_their_regex_compiled(tmp_path: Path) -> None:
    regex = r"^(?P<k>\d+)(?P<json>.*)$"
    text = with_frames(f"""{{binary: gzip, forward: raw, split: "\\n", extract: '{regex}'}}""")
    (source,) = load(tmp_path, text).sources
    assert source.frames == FramesSpec("gzip", "raw", "\n", re.compile(regex))


def test_an_extract_without_a_json_group_says_how_to_write_one(tmp_path: Path) -> None:
    text = with_frames(r"""{extract: '^(\d+)(.*)$'}""")
    issue = only(issues(tmp_path, text), "sources[0].frames.extract")
    assert "(?P<json>...)" in issue.message
    assert (issue.line, issue.column) == at(text, "extract:")


def test_an_extract_that_is_no_regex_is_reported(tmp_path: Path) -> None:
    found = issues(tmp_path, with_frames("{extract: '(?P<json>.*'}"))
    issue = only(found, "sources[0].frames.extract")
    assert issue.message.startswith("not a regular expression: missing ), unterminated subpattern")


def test_an_unknown_binary_mode_lists_the_modes(tmp_path: Path) -> None:
    issue = only(issues(tmp_path, with_frames("{binary: brotli}")), "sources[0].frames.binary")
    assert "gzip" in issue.message and "deflate" in issue.message


def test_a_missing_descriptor_set_is_reported_at_its_key(tmp_path: Path) -> None:
    text = with_frames("{protobuf: {descriptor: nowhere.desc, message: Push}}")
    issue = only(issues(tmp_path, text), "sources[0].frames.protobuf.descriptor")
    assert issue.message == "cannot read nowhere.desc: No such file or directory"


def test_a_message_the_descriptor_set_lacks_lists_those_it_has(
    tmp_path: Path, descriptor: Path  # noqa: F811 - the fixture
) -> None:
    (tmp_path / "feed.desc").write_bytes(descriptor.read_bytes())  # relative to the config
    text = with_frames("{protobuf: {descriptor: feed.desc, message: Pushh}}")
    issue = only(issues(tmp_path, text), "sources[0].frames.protobuf.message")
    has = "feed.v1.Deal, feed.v1.Push"
    assert issue.message == f"no message 'Pushh' in the descriptor set; it has: {has}"
    (source,) = load(tmp_path, text.replace("Pushh", "feed.v1.Push")).sources
    assert source.frames is not None and source.frames.protobuf is not None
    assert source.frames.protobuf.decode(b"\n\x01c") == {"channel": "c"}
    assert "Push" in PROTO


def test_a_file_that_is_no_descriptor_set_is_reported(tmp_path: Path) -> None:
    (tmp_path / "feed.desc").write_bytes(b"\xff\xfe not protobuf")
    text = with_frames("{protobuf: {descriptor: feed.desc, message: Push}}")
    issue = only(issues(tmp_path, text), "sources[0].frames.protobuf.descriptor")
    assert issue.message.startswith("not a descriptor set (protoc --descriptor_set_out)")


def test_an_unknown_placeholder_in_a_graphql_query_suggests_the_escape(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    routes:", "    subscribe:\n      - send: {query: 'subscription {count}'}\n    routes:")
    issue = only(issues(tmp_path, text), "sources[0].subscribe[0].send.query")
    assert issue.message.endswith("if these braces are literal text (a GraphQL query, JSON), "
                                  "write {{ and }}")
    escaped = text.replace("{count}", "{{ count }}")
    (source,) = load(tmp_path, escaped).sources
    assert source.subscribe[0].send.spec == {"query": "subscription {{ count }}"}


def test_an_unknown_placeholder_in_json_text_suggests_the_escape(tmp_path: Path) -> None:
    send = """'{"op": "sub", "args": {x}}'"""
    text = MINIMAL.replace("    routes:", f"    subscribe:\n      - send: {send}\n    routes:")
    issue = only(issues(tmp_path, text), "sources[0].subscribe[0].send")
    assert "write {{ and }}" in issue.message


def test_an_unknown_placeholder_in_a_topic_gets_no_escape_hint(tmp_path: Path) -> None:
    text = MINIMAL.replace("      - sink: console", "      - sink: console\n        topic: a/{foo}")
    issue = only(issues(tmp_path, text), "sources[0].routes[0].topic")
    assert "{{" not in issue.message


REJECTING = MINIMAL.replace("    routes:", """\
    auth:
      send: {type: auth}
      expect: {type: auth_ok}
      reject: [{type: auth_invalid}, {$close: [4401, 4403, 1008]}]
    subscribe:
      - {send: {op: sub}, reject: {error: true}}
    routes:""")


def test_a_list_of_reject_patterns_matches_when_any_does(tmp_path: Path) -> None:
    config = load(tmp_path, REJECTING)
    reject = config.sources[0].auth.reject  # type: ignore[union-attr]
    assert reject is not None
    assert reject.matches({"type": "auth_invalid", "message": "bad"})
    assert reject.closes(4403) and reject.closes(1008) and not reject.closes(1000)
    assert not reject.matches({"type": "auth_ok"})


def test_check_warns_when_reject_is_given_without_expect(tmp_path: Path) -> None:
    config = load(tmp_path, REJECTING)
    assert config.warnings == (
        "sources[0].subscribe[0].reject: without expect it is never seen (the session waits "
        "for a reply only when expect is set); add expect",)


def test_a_bad_close_operand_is_reported_inside_the_list(tmp_path: Path) -> None:
    text = REJECTING.replace("{$close: [4401, 4403, 1008]}", "{$close: [99]}")
    issue = only(issues(tmp_path, text), "sources[0].auth.reject[1].$close")
    assert issue.message.startswith("$close needs a list of close codes (1000-4999)")
