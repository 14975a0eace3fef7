"""The session's plan: auth and subscribe compiled into one list of state events, sends, waits."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config.model import SourceConfig
from bridge.config.specs import Step
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.state import Event


@dataclass(frozen=True, slots=True)
class Wait:
    """A point in the plan where the session waits for a message matching ``expect``."""
    expect: Pattern
    reject: Pattern | None
    stage: str  # "auth" or "subscribe": names the timeout and the rejection
    timeout: float
    deliver: bool = False  # the expected message is data: it goes to the routes as well
    items: tuple[str, ...] = ()  # pool items: a rejection refuses them, not the connection


@dataclass(frozen=True, slots=True)
class Say:
    """A message of the plan; while a ``{var.NAME}`` it reads is unset, the plan holds it
    (and everything after it) for up to ``timeout`` seconds, then fails at ``stage``."""
    send: Template
    stage: str
    timeout: float


Item = Event | Say | Wait


def _wait(expect: Pattern | None, reject: Pattern | None, stage: str, after: float, *,
          deliver: bool = False, items: tuple[str, ...] = ()) -> list[Item]:
    return [] if expect is None else [Wait(expect, reject, stage, after, deliver, items)]


def step_plan(step: Step) -> list[Item]:
    """One subscribe step: its message, then the wait for its ack (if it has ``expect``)."""
    say = Say(step.send, "subscribe", step.timeout)
    return [say, *_wait(step.expect, step.reject, "subscribe", step.timeout,
                        deliver=step.deliver, items=step.items)]


def subscribe_plan(cfg: SourceConfig, steps: tuple[Step, ...] | None = None) -> list[Item]:
    """Subscribing again on a live connection (``steps``, all of ``cfg``'s by default), from
    SUBSCRIBING back to CONNECTED."""
    todo = cfg.subscribe if steps is None else steps
    return [Event.SUBSCRIBE, *(i for s in todo for i in step_plan(s)), Event.READY]


def compile_plan(cfg: SourceConfig) -> list[Item]:
    """A new connection's plan: auth (if any), subscribe (if any), CONNECTED."""
    auth, plan = cfg.auth, list[Item]()
    if auth is not None:
        plan += [Event.AUTH, *_wait(auth.await_, auth.reject, "auth", auth.timeout)]
        plan += [] if auth.send is None else [Say(auth.send, "auth", auth.timeout)]
        plan += _wait(auth.expect, auth.reject, "auth", auth.timeout)
    if cfg.subscribe:
        plan += subscribe_plan(cfg)[:-1]
    return [*plan, Event.READY]


def reads_data(cfg: SourceConfig) -> bool:
    """Once CONNECTED, whether a data message may be a reply's trigger, a heartbeat's pong or
    the proof that an ``expect_every`` subscription is alive, a value to capture, a request to
    reconnect or (a protocol preset) a refusal: the session must then see each."""
    beat = cfg.heartbeat
    return bool(cfg.replies) or bool(beat and beat.expect) or cfg.protocol is not None or \
        bool(cfg.capture) or bool(cfg.renew.reconnect_when) or \
        any(s.expect_every for s in cfg.subscribe)
