"""Load-time placeholders resolve from the environment and files, and secrets never leak."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.placeholders import PlaceholderError, resolve
from bridge.redaction import redact

FILES = {"/run/credentials/token": "s3cret\n", "/etc/two-lines": "a\n\n", "/etc/crlf": "x\r\n"}


def read_file(path: str) -> str:
    if path not in FILES:
        raise FileNotFoundError(2, "No such file or directory", path)
    return FILES[path]


def test_env_placeholder_is_replaced_anywhere_in_a_string() -> None:
    value, secrets = resolve("wss://h/?token=${env:TOKEN}&x=1", {"TOKEN": "abcd"}, read_file)
    assert value == "wss://h/?token=abcd&x=1"
    assert secrets == {"abcd"}  # a value in a URL's query is a secret, whatever its name


def test_an_env_value_outside_a_query_is_config_not_a_secret() -> None:
    value, secrets = resolve("ws://${env:HOST}:${env:PORT}/ws?x=1", {"HOST": "h", "PORT": "1883"},
                             read_file)
    assert value == "ws://h:1883/ws?x=1"
    assert secrets == frozenset()
    assert resolve("${env:N}", {"N": "1"}, read_file)[1] == frozenset()


def test_every_value_is_a_secret_in_a_secret_place() -> None:
    _, secrets = resolve("${env:U}:${env:P}", {"U": "me", "P": "pw"}, read_file, secret=True)
    assert secrets == {"me", "pw"}


def test_default_is_used_when_the_variable_is_unset_or_empty() -> None:
    assert resolve("${env:A:-fallback}", {}, read_file)[0] == "fallback"
    assert resolve("${env:A:-fallback}", {"A": ""}, read_file)[0] == "fallback"
    assert resolve("${env:A:-fallback}", {"A": "set"}, read_file)[0] == "set"
    assert resolve("${env:A:-}", {}, read_file)[0] == ""


def test_set_but_empty_variable_without_default_is_empty() -> None:
    assert resolve("x${env:A}y", {"A": ""}, read_file)[0] == "xy"


def test_file_placeholder_strips_exactly_one_trailing_newline() -> None:
    value, secrets = resolve("${file:/run/credentials/token}", {}, read_file)
    assert value == "s3cret"
    assert secrets == {"s3cret"}
    assert resolve("${file:/etc/two-lines}", {}, read_file)[0] == "a\n"
    assert resolve("${file:/etc/crlf}", {}, read_file)[0] == "x"


def test_several_file_placeholders_in_one_string_are_all_secrets() -> None:
    value, secrets = resolve("${file:/etc/crlf}:${file:/run/credentials/token}@${env:H}",
                             {"H": "host"}, read_file)
    assert value == "x:s3cret@host"
    assert secrets == {"x", "s3cret"}


def test_dollar_dollar_brace_is_a_literal_placeholder() -> None:
    assert resolve("cost $${env:X}", {}, read_file) == ("cost ${env:X}", frozenset())


def test_resolved_values_are_not_resolved_again() -> None:
    assert resolve("${env:A}", {"A": "${env:B}"}, read_file)[0] == "${env:B}"


def test_quote_applies_to_substituted_values_only() -> None:
    value, _ = resolve("{seq}-${env:A}", {"A": "{x}"}, read_file, quote=lambda s: f"<{s}>")
    assert value == "{seq}-<{x}>"


def test_unset_variable_without_default_names_the_variable() -> None:
    with pytest.raises(PlaceholderError, match=r"environment variable HA_TOKEN is not set"):
        resolve("${env:HA_TOKEN}", {"OTHER": "x"}, read_file)


def test_unreadable_file_names_the_path_and_the_reason() -> None:
    with pytest.raises(PlaceholderError, match=r"cannot read \$\{file:/nope\}: No such file"):
        resolve("${file:/nope}", {}, read_file)


@pytest.mark.parametrize("text", ["${HOME}", "${env:}", "${env:1X}", "${vault:a}", "a ${env:X"])
def test_malformed_placeholders_are_errors(text: str) -> None:
    with pytest.raises(PlaceholderError):
        resolve(text, {"X": "v", "HOME": "/root"}, read_file)


def test_errors_never_contain_a_resolved_value() -> None:
    with pytest.raises(PlaceholderError) as caught:
        resolve("${env:GOOD}${env:MISSING}", {"GOOD": "topsecret"}, read_file)
    assert "topsecret" not in str(caught.value)


def test_redact_replaces_longest_secrets_first() -> None:
    text = "token abcdefgh and abcd"
    assert redact(text, ["abcd", "abcdefgh"]) == "token *** and ***"


def test_a_value_shorter_than_4_characters_is_never_replaced_in_unrelated_text() -> None:
    text = "OK (1 sources, 1 sinks) at 127.0.0.1:1883"
    assert redact(text, ["1", "127", "7.0", "1883"]) == "OK (1 sources, 1 sinks) at 127.0.0.1:***"


def test_redact_ignores_empty_secrets_and_keeps_text_without_secrets() -> None:
    assert redact("nothing here", ["", "zzz"]) == "nothing here"
    assert redact("nothing here", []) == "nothing here"


def test_redact_treats_secrets_as_literal_text() -> None:
    assert redact("a.bc a+bc", ["a+bc"]) == "a.bc ***"


ENV = st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,5}", fullmatch=True), st.text(max_size=8))


# Random text rarely forms a placeholder, so half the inputs are built from placeholder parts.
PLACEHOLDERISH = st.lists(
    st.sampled_from(["${", "$${", "}", "env:", "file:", ":-", "A", "B_1", "/run/credentials/token"])
).map("".join)


@given(text=st.one_of(st.text(), PLACEHOLDERISH), env=ENV)
def test_any_string_resolves_or_raises_a_value_error(text: str, env: dict[str, str]) -> None:
    try:
        value, secrets = resolve(text, env, read_file)
    except ValueError:
        return
    assert isinstance(value, str)
    assert all(isinstance(s, str) for s in secrets)


@given(
    text=st.text(max_size=60),
    secrets=st.lists(st.text(alphabet=st.characters(exclude_characters="*"), min_size=4)),
)
def test_no_whole_secret_survives_redaction(text: str, secrets: list[str]) -> None:
    planted = text + "".join(secrets) + text
    out = redact(planted, secrets)
    assert not any(secret in out for secret in secrets)
