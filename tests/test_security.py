"""Credentials stay off plain ws://, inline secrets in a readable file are warned about, and no
secret ever reaches the output of ``ws-bridge check``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.config.load import load_config
from bridge.errors import ConfigError, ConfigIssue

ROOT = Path(__file__).resolve().parents[1]
EX_CONFIG = 78

SOURCE = """\
version: 1
sinks:
  console: {{type: stdout}}
sources:
  - name: feed
    url: "{url}"
{extra}    routes:
      - sink: console
"""

# Each way a source can carry credentials, and how `check` names it (never by its value).
CREDENTIALS = {
    "auth message": ("", "    auth: {send: {type: auth, access_token: s3cret-auth}}\n",
                     "the auth message"),
    "authorization header": ("", "    headers: {Authorization: Bearer s3cret-bearer}\n",
                             "the Authorization header"),
    "api key header": ("", "    headers: {X-Api-Key: s3cret-key}\n", "the X-Api-Key header"),
    "cookie header": ("", "    headers: {Cookie: session=s3cret-cookie}\n", "the Cookie header"),
    "query token": ("?token=s3cret-query&stream=btc", "", "the URL query parameter 'token'"),
    "user info": ("", "", "the user info in the URL"),
}


def write(tmp_path: Path, text: str, mode: int = 0o600, name: str = "bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    path.chmod(mode)
    return path


def source_text(url: str, extra: str = "") -> str:
    return SOURCE.format(url=url, extra=extra)


def with_credential(kind: str, host: str, scheme: str = "ws") -> str:
    query, extra, _ = CREDENTIALS[kind]
    userinfo = "bridge:s3cret-pw@" if kind == "user info" else ""
    return source_text(f"{scheme}://{userinfo}{host}/ws{query}", extra)


def issues_of(path: Path, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={} if env is None else env)
    return caught.value.issues


def check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``ws-bridge check`` as a user runs it, with only ``env`` (and PATH) in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", "check", str(path)],
        cwd=ROOT, env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True, text=True, timeout=30, check=False,
    )


# --- allow_insecure -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(CREDENTIALS))
def test_credentials_over_plain_ws_to_another_host_are_refused_at_the_url(
    tmp_path: Path, kind: str
) -> None:
    text = with_credential(kind, "feed.example.com:8080")
    (issue,) = issues_of(write(tmp_path, text))
    assert issue.path == "sources[0].url"
    assert (issue.line, issue.column) == (6, 5)  # the url key of the source
    assert CREDENTIALS[kind][2] in issue.message
    assert "ws://" in issue.message and "feed.example.com" in issue.message
    assert "use wss://" in issue.message and "allow_insecure: true" in issue.message
    assert "s3cret" not in str(issue)


@pytest.mark.parametrize("kind", list(CREDENTIALS))
def test_allow_insecure_lets_credentials_go_over_plain_ws(tmp_path: Path, kind: str) -> None:
    text = with_credential(kind, "192.168.1.20:8123").replace(
        "    routes:", "    allow_insecure: true\n    routes:"
    )
    (source,) = load_config(write(tmp_path, text), env={}).sources
    assert source.allow_insecure is True


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "127.9.8.7", "localhost:8123", "LOCALHOST", "[::1]:9000",
             "[::ffff:127.0.0.1]"],
)
def test_credentials_to_this_machine_need_no_opt_in(tmp_path: Path, host: str) -> None:
    for kind in CREDENTIALS:
        (source,) = load_config(write(tmp_path, with_credential(kind, host)), env={}).sources
        assert source.allow_insecure is False


@pytest.mark.parametrize(
    "host", ["10.0.0.5", "192.168.1.2:8123", "[fe80::1]", "127.0.0.1.nip.io", "localhost.example",
             "homeassistant.local:8123"],
)
def test_hosts_that_only_look_local_still_need_the_opt_in(tmp_path: Path, host: str) -> None:
    (issue,) = issues_of(write(tmp_path, with_credential("auth message", host)))
    assert issue.path == "sources[0].url"


def test_wss_carries_credentials_to_any_host(tmp_path: Path) -> None:
    for kind in CREDENTIALS:
        text = with_credential(kind, "feed.example.com", scheme="wss")
        assert load_config(write(tmp_path, text), env={}).sources


def test_plain_ws_without_credentials_needs_no_opt_in(tmp_path: Path) -> None:
    text = source_text(
        "ws://feed.example.com/ws?stream=btcusdt&depth=5",
        "    headers: {User-Agent: ws-bridge}\n"
        "    subscribe: [{send: {method: SUBSCRIBE, params: [btcusdt@trade]}}]\n",
    )
    assert load_config(write(tmp_path, text), env={}).sources[0].allow_insecure is False


def test_a_credential_from_the_environment_counts_too(tmp_path: Path) -> None:
    text = source_text("ws://feed.example.com/ws?access_token=${env:TOKEN}")
    (issue,) = issues_of(write(tmp_path, text), {"TOKEN": "env-s3cret"})
    assert "the URL query parameter 'access_token'" in issue.message
    assert "env-s3cret" not in issue.message


def test_every_insecure_source_is_reported_at_once(tmp_path: Path) -> None:
    text = with_credential("auth message", "a.example") + """\
  - name: other
    url: ws://b.example/?apikey=s3cret-other
  - name: fine
    url: wss://c.example/?apikey=s3cret-fine
"""
    found = issues_of(write(tmp_path, text))
    assert [(i.path, i.line) for i in found] == [("sources[0].url", 6), ("sources[1].url", 11)]


def test_home_assistant_example_opts_in_for_its_lan_url() -> None:
    path = ROOT / "configs" / "home-assistant.yaml"
    (source,) = load_config(path, env={}).sources
    assert source.url.startswith("ws://homeassistant.local")
    assert source.allow_insecure is True
    assert "trust" in path.read_text()  # the trade-off is explained next to the setting


def test_check_command_refuses_credentials_over_plain_ws(tmp_path: Path) -> None:
    path = write(tmp_path, with_credential("authorization header", "feed.example.com"))
    result = check(path, {})
    assert result.returncode == EX_CONFIG
    assert f"{path}:6:5: sources[0].url: the Authorization header would travel" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr


# --- warnings about inline secrets in a readable file --------------------------------------------

INLINE = """\
version: 1
sinks:
  broker: {type: mqtt, url: "mqtt://127.0.0.1", password: inline-s3cret}
sources:
  - name: feed
    url: ws://127.0.0.1:1/ws
    routes: [{sink: broker, topic: t}]
"""


@pytest.mark.parametrize(("mode", "who"), [(0o644, "everyone"), (0o604, "everyone"),
                                           (0o640, "its group")])
def test_inline_secret_in_a_readable_file_is_warned_about(
    tmp_path: Path, mode: int, who: str
) -> None:
    path = write(tmp_path, INLINE, mode)
    (warning,) = load_config(path, env={}).warnings
    assert str(path) in warning
    assert f"readable by {who}" in warning
    assert f"chmod 600 {path}" in warning
    assert "${env:NAME}" in warning and "${file:PATH}" in warning and "systemd" in warning
    assert "inline-s3cret" not in warning


@pytest.mark.parametrize(
    "text",
    [
        INLINE.replace("inline-s3cret", '"${env:MQTT_PASSWORD}"'),
        INLINE.replace("inline-s3cret", '"${file:mqtt-password}"'),
        INLINE.replace("password: inline-s3cret", "username: bridge"),
        source_text("ws://127.0.0.1/ws", "    headers: {Authorization: 'Bearer ${env:TOKEN}'}\n"),
        source_text("ws://127.0.0.1/ws?token=${env:TOKEN}"),
    ],
    ids=["env", "file", "no-password", "header-placeholder", "query-placeholder"],
)
def test_a_readable_file_without_inline_secrets_is_not_warned_about(
    tmp_path: Path, text: str
) -> None:
    write(tmp_path, "pw\n", 0o600, name="mqtt-password")
    path = write(tmp_path, text, 0o644)
    assert load_config(path, env={"MQTT_PASSWORD": "pw", "TOKEN": "t"}).warnings == ()


@pytest.mark.parametrize(("mode", "who"), [(0o644, "everyone"), (0o640, "its group")])
def test_a_file_secret_readable_by_others_is_warned_about(
    tmp_path: Path, mode: int, who: str
) -> None:
    secret = write(tmp_path, "file-s3cret\n", mode, name="mqtt-password")
    text = INLINE.replace("inline-s3cret", '"${file:mqtt-password}"')
    (warning,) = load_config(write(tmp_path, text, 0o600), env={}).warnings
    said = "mqtt-password, read by ${file:mqtt-password}, holds a secret and is readable by "
    assert said + who in warning
    assert "chmod 600 mqtt-password" in warning and "file-s3cret" not in warning
    secret.chmod(0o600)
    assert load_config(write(tmp_path, text, 0o600), env={}).warnings == ()


def test_a_private_file_with_inline_secrets_is_not_warned_about(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, INLINE, 0o600), env={}).warnings == ()


def test_check_command_shows_the_warning_and_still_passes(tmp_path: Path) -> None:
    path = write(tmp_path, INLINE, 0o644)
    result = check(path, {})
    assert result.returncode == 0, result.stderr
    assert f"chmod 600 {path}" in result.stdout + result.stderr
    assert "inline-s3cret" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "extra",
    [
        "    headers: {Authorization: Bearer inline-s3cret}\n",
        "    auth: {send: {type: auth, access_token: inline-s3cret}}\n",
    ],
)
def test_inline_source_credentials_are_warned_about_too(tmp_path: Path, extra: str) -> None:
    path = write(tmp_path, source_text("ws://127.0.0.1/ws", extra), 0o644)
    assert len(load_config(path, env={}).warnings) == 1


def test_inline_credential_in_the_url_is_warned_about(tmp_path: Path) -> None:
    path = write(tmp_path, source_text("wss://h.example/ws?api_key=inline-s3cret"), 0o644)
    assert len(load_config(path, env={}).warnings) == 1


# --- redaction ------------------------------------------------------------------------------------

SECRET_ENV = {
    "PATH_KEY": "path-key-s3cret",  # e.g. a Binance listenKey, which goes in the URL path
    "URL_TOKEN": "url-tok-s3cret",
    "API_TOKEN": "api-tok-s3cret",
    "HA_TOKEN": "ha-tok-s3cret",
    "MQTT_USER_PW": "mqtt-env-s3cret",
}
FILE_SECRET = "file-s3cret"
LITERALS = ["literal-url-s3cret", "literal-header-s3cret", "literal-mqtt-s3cret",
            "literal-auth-s3cret", "url-userinfo-s3cret"]
ALL_SECRETS = [*SECRET_ENV.values(), FILE_SECRET, *LITERALS]

SECRETS = """\
version: 1
sinks:
  broker: {type: mqtt, url: "mqtt://bridge:url-userinfo-s3cret@127.0.0.1", password: "${file:pw}"}
  other: {type: mqtt, url: "mqtt://127.0.0.1", username: u, password: literal-mqtt-s3cret}
  third: {type: mqtt, url: "mqtt://127.0.0.1", password: "${env:MQTT_USER_PW}"}
sources:
  - name: feed
    url: "wss://h.example/ws/${env:PATH_KEY}?token=${env:URL_TOKEN}&api_key=literal-url-s3cret"
    headers: {Authorization: "Bearer ${env:API_TOKEN}", X-Api-Key: literal-header-s3cret}
    auth:
      send: {type: auth, access_token: "${env:HA_TOKEN}", password: literal-auth-s3cret}
    routes: [{sink: broker, topic: "feeds/{source}"}]
"""


def test_every_kind_of_secret_is_collected_for_redaction(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(FILE_SECRET + "\n")
    config = load_config(write(tmp_path, SECRETS), env=SECRET_ENV)
    assert set(ALL_SECRETS) <= config.secrets
    assert f"Bearer {SECRET_ENV['API_TOKEN']}" in config.secrets


def test_check_output_of_a_valid_config_holds_no_secret(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(FILE_SECRET + "\n")
    path = write(tmp_path, SECRETS)
    result = check(path, SECRET_ENV)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "OK" in output
    leaked = [secret for secret in ALL_SECRETS if secret in output]
    assert leaked == [], output


def test_check_output_of_an_invalid_config_holds_no_secret(tmp_path: Path) -> None:
    # Every error sits on a line that holds a secret, and several messages quote the value.
    (tmp_path / "pw").write_text(FILE_SECRET + "\n")
    text = (
        SECRETS.replace("wss://h.example", "ws://h.example")  # credentials over plain ws://
        .replace("password: literal-mqtt-s3cret}", "password: literal-mqtt-s3cret, keepalive: x}")
        .replace("    routes:", """\
    connect_timeout: "${env:HA_TOKEN}"
    idle_timeout: literal-header-s3cret
    on_invalid: "${file:pw}"
    name: "${env:URL_TOKEN}"
    ping: {interval: "${env:API_TOKEN}", timeout: "Bearer ${env:API_TOKEN}"}
    routes:""")
    )
    path = write(tmp_path, text)
    result = check(path, SECRET_ENV)
    assert result.returncode == EX_CONFIG
    output = result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith(str(path) + ":")]
    assert len(problems) >= 7, output
    assert '"***" is not a duration' in output
    leaked = [secret for secret in ALL_SECRETS if secret in output]
    assert leaked == [], output


# --- which values are secrets: the secret places, not every ${env:} value -------------------------

PLACES = """\
version: 1
sinks:
  out: {type: mqtt, url: "mqtt://${env:HOST}:${env:PORT}", password: "${env:MQTT_PW}"}
  ws: {type: websocket, listen: "127.0.0.1:${env:WS_PORT}", token: "${env:WS_TOKEN}"}
sources:
  - name: feed
    url: "wss://${env:HOST}:${env:PORT}/ws/${env:LISTEN_KEY}?stream=${env:STREAM}"
    connect_timeout: "${env:TIMEOUT}"
    headers: {X-Api-Key: "${env:HEADER_KEY}", X-Request-Id: "${env:REQUEST_ID}"}
    auth: {send: {op: login, args: ["${env:AUTH_ARG}", "{sign.login}"]}}
    sign:
      login: {hmac: sha256, key: "${env:SIGN_KEY}", message: "{now_s}"}
    jwt:
      cdp: {algorithm: HS256, key: "${env:JWT_KEY}", claims: {sub: me}}
    http:
      - {name: token, method: POST, url: "https://${env:HOST}/token",
         form: {grant: "${env:FORM_VALUE}"}}
    routes: [{sink: out, topic: "t/${env:TOPIC}"}]
"""
SECRET_PLACES = {"MQTT_PW": "mqtt-pw-value", "WS_TOKEN": "ws-token-value",
                 "LISTEN_KEY": "listen-key-value", "STREAM": "stream-value",
                 "HEADER_KEY": "header-key-value", "AUTH_ARG": "auth-arg-value",
                 "SIGN_KEY": "sign-key-value", "JWT_KEY": "jwt-key-value-of-32-bytes-at-least",
                 "FORM_VALUE": "form-value"}
CONFIG_PLACES = {"HOST": "localhost", "PORT": "8443", "WS_PORT": "9001", "TIMEOUT": "15s",
                 "REQUEST_ID": "request-id-value", "TOPIC": "topic-value"}


def test_env_values_in_secret_places_are_secrets_and_elsewhere_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, PLACES), env={**SECRET_PLACES, **CONFIG_PLACES})
    assert set(SECRET_PLACES.values()) <= config.secrets
    assert not set(CONFIG_PLACES.values()) & config.secrets, config.secrets


def test_check_shows_config_from_the_environment_and_hides_its_secrets(tmp_path: Path) -> None:
    result = check(write(tmp_path, PLACES), {**SECRET_PLACES, **CONFIG_PLACES, "PORT": "1"})
    assert result.returncode == 0, result.stderr
    assert "OK (1 sources, 2 sinks)" in result.stdout  # PORT=1 masks no count
    assert "wss://localhost:1/ws/***" in result.stdout, result.stdout
    output = result.stdout + result.stderr
    assert [value for value in SECRET_PLACES.values() if value in output] == []
