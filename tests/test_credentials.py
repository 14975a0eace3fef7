"""The pure parts of credentials that expire: clock placeholders, signatures, JWTs, and the
session's HTTP steps as events in and actions out (no I/O: the driver's part is in
tests/test_http_steps.py against real servers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import replace
from typing import Any

import jwt
import pytest

from bridge.config.changes import ROUTING_FIELDS, SUBSCRIPTION_FIELDS, changed_fields
from bridge.config.http_specs import HttpStep, JwtSpec, SignSpec
from bridge.config.model import SourceConfig
from bridge.config.specs import HeartbeatSpec, Step
from bridge.config.stateful import RenewSpec
from bridge.errors import AuthRejected, ConnectFailed
from bridge.messages import Message
from bridge.routing.context import Context, TemplateError
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.actions import Deliver, Fail, Notice, Send, Unread
from bridge.upstream.attempt import Dial, Fetch, Redact
from bridge.upstream.handoff import Handover, Rollover
from bridge.upstream.http_result import HttpResult
from bridge.upstream.session import Session
from tests.test_session import sent


def test_one_clock_and_one_nonce_per_render_with_offsets() -> None:
    t = Template({"a": "{now_s}", "b": "{now_ms:+10s}", "c": "{now_s:-1m}", "d": "{now_iso}",
                  "n1": "{nonce}", "n2": "x{nonce}"})
    out = t.render(Context(now=1_700_000_000.25))
    assert (out["a"], out["b"], out["c"]) == (1_700_000_000, 1_700_000_010_250, 1_699_999_940)
    assert out["d"] == "2023-11-14T22:13:20.250Z"
    assert len(out["n1"]) == 32 and out["n2"] == "x" + out["n1"]
    assert t.render(Context(now=1.0))["n1"] != out["n1"]  # a new render, a new nonce


def test_a_bad_offset_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="not a duration"):
        Template("{now_s:+10parsecs}")
    with pytest.raises(TemplateError, match="only now_ms, now_s, now_iso take an offset"):
        Template("{seq:+1s}")


def render_with(cfg: SourceConfig, spec: Any, now: float = 1_700_000_000.0) -> Any:
    """What the session's renderer makes of ``spec`` (its sign and jwt namespaces included)."""
    session = Session(cfg, wall=lambda: now)
    return Template(spec).render(session._life.talk.render.context(0.0))


def test_signatures_match_the_standard_library_over_the_same_timestamp() -> None:
    secret = base64.b64encode(b"k3y").decode()
    cfg = SourceConfig("s", "ws://h/", sign=(
        SignSpec("cb", "sha256", Template("{now_s}GET/users/self/verify"), b"k3y", "base64"),
        SignSpec("h", "sha512", Template("{now_ms}")),
    ))
    out = render_with(cfg, {"t": "{now_s}", "sig": "{sign.cb}", "digest": "{sign.h}"})
    mac = hmac.new(base64.b64decode(secret), f"{out['t']}GET/users/self/verify".encode(),
                   hashlib.sha256).digest()
    assert out["sig"] == base64.b64encode(mac).decode()
    assert out["digest"] == hashlib.sha512(str(out["t"] * 1000).encode()).hexdigest()


def test_a_jwt_is_signed_with_its_claims_nbf_and_exp() -> None:
    cfg = SourceConfig("s", "ws://h/", jwt=(JwtSpec(
        "t", "HS256", "shared-secret-of-32-bytes-or-more!", Template({"kid": "k"}),
        Template({"sub": "{source}"}), 60.0),))
    token = render_with(cfg, "{jwt.t}")
    claims = jwt.decode(token, "shared-secret-of-32-bytes-or-more!", algorithms=["HS256"],
                        options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"sub": "s", "nbf": 1_700_000_000, "exp": 1_700_000_060}
    assert jwt.get_unverified_header(token)["kid"] == "k"


# --- HTTP steps in the session -----------------------------------------------------------------

def steps_source(**kw: Any) -> SourceConfig:
    return SourceConfig("s", "ws://h/{http.key.json.k}", http=(
        HttpStep("key", Template("http://h/key"), method="POST"),
        HttpStep("ka", Template("http://h/ka?k={http.key.json.k}"), on="every", every=5.0, **kw),
        HttpStep("snap", Template("http://h/snap"), on="subscribed", deliver=True),
    ), subscribe=(Step(Template({"op": "sub"}), Pattern({"ok": True})),))


def response(step: str, body: str, status: int = 200) -> HttpResult:
    return HttpResult(step, status, body, {"X-Token": "t"})


def test_connect_steps_run_before_dialing_and_their_answers_feed_the_url() -> None:
    s = Session(steps_source())
    fetch = next(a for a in s.connecting(0.0) if isinstance(a, Fetch))
    assert (fetch.request.method, fetch.request.url) == ("POST", "http://h/key")
    out = s.fetched(fetch.request, response("key", '{"k": "listen-key-1"}'), 0.1)
    assert Dial("ws://h/listen-key-1", {}) in out
    assert Redact(("listen-key-1",)) in out
    assert s.deadline() is None  # no timer before the connection is up


def test_every_and_subscribed_steps_are_deadlines_of_the_live_connection() -> None:
    s = Session(steps_source())
    s.fetched(next(a for a in s.connecting(0.0) if isinstance(a, Fetch)).request,
              response("key", '{"k": "K"}'), 0.0)
    assert Send('{"op":"sub"}') in s.start(1.0)
    s.receive(Message("s", '{"ok": true}', 0.0), 2.0)  # subscribed: the snapshot is due now
    assert s.deadline() == 2.0
    snap = [a for a in s.tick(2.0) if isinstance(a, Fetch)]
    assert [f.request.step for f in snap] == ["snap"]
    [deliver] = s.fetched(snap[0].request, response("snap", '{"bids": []}'), 2.1)
    assert isinstance(deliver, Deliver) and deliver.msg.data == '{"bids": []}'  # as received
    assert s.deadline() == 7.0  # the keepalive, every 5 s from CONNECTED
    ka = [a for a in s.tick(7.0) if isinstance(a, Fetch)]
    assert ka[0].request.url == "http://h/ka?k=K"
    assert s.deadline() == 12.0


def test_a_failing_step_fails_the_attempt_or_is_logged_or_reconnects() -> None:
    s = Session(steps_source())
    fetch = next(a for a in s.connecting(0.0) if isinstance(a, Fetch))
    [fail] = s.fetched(fetch.request, response("key", "no", 401), 0.0)
    assert isinstance(fail, Fail) and isinstance(fail.error, AuthRejected)
    assert "http step 'key' (POST) failed: HTTP 401" in str(fail.error)
    fetch = next(a for a in s.connecting(1.0) if isinstance(a, Fetch))
    [fail] = s.fetched(fetch.request, "http://h/key: cannot connect", 1.0)
    assert isinstance(fail.error, ConnectFailed) and not isinstance(fail.error, AuthRejected)
    for on_error, kind in (("log", Notice), ("reconnect", Fail)):
        s = Session(steps_source(on_error=on_error))
        s.fetched(next(a for a in s.connecting(0.0) if isinstance(a, Fetch)).request,
                  response("key", '{"k": "K"}'), 0.0)
        s.start(0.0)
        s.receive(Message("s", '{"ok": true}', 0.0), 0.0)
        ka = [a for a in s.tick(5.0) if isinstance(a, Fetch) and a.request.step == "ka"]
        out = s.fetched(ka[0].request, response("ka", "", 500), 5.0)
        assert [type(a) for a in out if not isinstance(a, Unread)] == [kind]


def test_an_answer_for_a_connection_that_is_gone_is_dropped() -> None:
    s = Session(steps_source())
    old = next(a for a in s.connecting(0.0) if isinstance(a, Fetch))
    s.lost(ConnectFailed("s", "x"), "network", True)
    s.connecting(1.0)
    assert s.fetched(old.request, response("key", '{"k": "stale"}'), 1.0) == []


def test_a_heartbeat_interval_read_from_a_response_and_a_non_json_read_is_clear() -> None:
    cfg = SourceConfig("s", "ws://h/", http=(HttpStep("b", Template("http://h/b")),),
                       heartbeat=HeartbeatSpec(Template({"op": "ping"}), 0.0,
                                               interval_from=Template("{http.b.json.ms}ms")))
    s = Session(cfg)
    fetch = next(a for a in s.connecting(0.0) if isinstance(a, Fetch))
    s.fetched(fetch.request, response("b", '{"ms": 250}'), 0.0)
    s.start(10.0)
    assert s.deadline() == 10.25
    s = Session(cfg)
    fetch = next(a for a in s.connecting(0.0) if isinstance(a, Fetch))
    s.fetched(fetch.request, response("b", "<html>"), 0.0)
    [fail] = [a for a in s.start(10.0) if isinstance(a, Fail)]
    assert "the response of HTTP step 'b' is not JSON" in str(fail.error)
    assert math.isinf(s.deadline() or math.inf)


def test_a_reload_that_changes_http_sign_or_jwt_reconnects_the_source() -> None:
    old = steps_source()
    for new in (steps_source(on_error="reconnect"),
                replace(old, sign=(SignSpec("x", "sha256", Template("")),)),
                replace(old, jwt=(JwtSpec("j", "HS256", "k"),))):
        changed = changed_fields(old, new)
        assert changed & {"http", "sign", "jwt"}
        assert changed - SUBSCRIPTION_FIELDS - ROUTING_FIELDS  # handled as "reconnects"


def test_a_response_is_read_by_status_text_json_and_headers_in_any_case() -> None:
    s = Session(SourceConfig("s", "ws://h/?t={http.key.headers.x-token}&s={http.key.status}",
                             http=(HttpStep("key", Template("http://h/key")),)))
    fetch = next(a for a in s.connecting(0.0) if isinstance(a, Fetch))
    out = s.fetched(fetch.request, HttpResult("key", 201, '{"a": [1]}', {"X-Token": "tk"}), 0.0)
    assert Dial("ws://h/?t=tk&s=201", {}) in out
    ctx = Context(names={"http": {"key": HttpResult("key", 200, "plain", {})}})
    assert Template("{http.key.text}").render(ctx) == "plain"
    with pytest.raises(TemplateError, match="the response of HTTP step 'key' is not JSON"):
        Template("{http.key.json.a}").render(ctx)


def test_an_every_step_whose_request_is_still_out_skips_its_turn() -> None:
    s = Session(steps_source())
    s.fetched(next(a for a in s.connecting(0.0) if isinstance(a, Fetch)).request,
              response("key", '{"k": "K"}'), 0.0)
    s.start(1.0)
    s.receive(Message("s", '{"ok": true}', 0.0), 2.0)
    s.tick(2.0)  # the snapshot
    [ka] = [a for a in s.tick(7.0) if isinstance(a, Fetch)]
    assert s.deadline() == 12.0
    assert not [a for a in s.tick(12.0) if isinstance(a, Fetch)]  # the first is still out
    assert s.deadline() == 17.0  # its timer goes on
    s.fetched(ka.request, response("ka", "{}"), 13.0)
    assert [a.request.step for a in s.tick(17.0) if isinstance(a, Fetch)] == ["ka"]


def test_a_successor_runs_the_connect_steps_before_it_opens_and_the_subscribed_ones_on_takeover(
        ) -> None:
    s = Session(replace(steps_source(), renew=RenewSpec(max_age=60.0, rollover="overlap")))
    s.fetched(next(a for a in s.connecting(0.0) if isinstance(a, Fetch)).request,
              response("key", '{"k": "K1"}'), 0.0)
    s.start(1.0)
    s.receive(Message("s", '{"ok": true}', 0.0), 2.0)
    [snap] = [a for a in s.tick(2.0) if isinstance(a, Fetch)]
    s.fetched(snap.request, response("snap", "{}"), 2.0)
    [leg] = [a.leg for a in s.tick(61.0) if isinstance(a, Rollover)]
    [key] = [a for a in leg.connecting(61.0) if isinstance(a, Fetch)]
    assert key.request.step == "key"  # a fresh key before the successor opens
    assert Dial("ws://h/K2", {}) in leg.fetched(key.request, response("key", '{"k": "K2"}'), 61.1)
    assert sent(leg.start(61.2)) == [{"op": "sub"}]
    assert [a for a in leg.screen(Message("s", '{"ok": true}', 0.0), 61.3)
            if isinstance(a, Handover)] == [Handover()]
    leg.handover(61.4)
    assert s.deadline() == 61.4  # the subscribed steps are due on the new connection
    [snap] = [a for a in s.tick(61.4) if isinstance(a, Fetch)]
    assert snap.request.step == "snap"
