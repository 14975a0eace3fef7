"""A source's HTTP steps as a sub-machine of the session: before each attempt (``connect``, in
order, then ``Dial``), on timers while connected (``every``), after each subscribe.

It renders each request (one context: one clock per request) and hands it out as ``Fetch``;
the response comes back through ``fetched`` and is what ``{http.NAME...}`` reads from then on.
The URL and headers of the attempt are rendered once the ``connect`` steps have answered."""

from __future__ import annotations

from bridge.config.http_specs import HttpStep
from bridge.config.model import SourceConfig
from bridge.errors import ConnectFailed
from bridge.messages import Message
from bridge.routing.template import Template, TemplateError
from bridge.upstream.actions import Action, Deliver, Fail
from bridge.upstream.attempt import Fetch, Redact
from bridge.upstream.http_result import HttpRequest, HttpResult
from bridge.upstream.render import Renderer
from bridge.upstream.requests import dial, failure, request
from bridge.upstream.step_timers import StepTimers


class HttpSteps:
    """The HTTP steps of one source across its connections; ``timers`` says when the timed
    ones run while connected. A successor connection runs the ``connect`` steps on one of its
    own, sharing the results (``render``'s namespaces)."""

    def __init__(self, cfg: SourceConfig, render: Renderer) -> None:
        self._cfg, self._render = cfg, render
        self._steps = {step.name: step for step in cfg.http}
        self._url, self._headers = Template(cfg.url), Template(dict(cfg.headers))
        self.results: dict[str, HttpResult] = render.names.setdefault("http", {})
        self._queue: list[HttpStep] = []  # connect steps yet to run in this attempt
        self.timers = StepTimers(cfg.http)
        self._generation = 0

    @property
    def next(self) -> float:
        """When the earliest timed step runs (``inf``: none)."""
        return self.timers.next

    def begin(self, now: float) -> list[Action]:
        """A connection attempt: its first ``connect`` step, or ``Dial`` when there is none."""
        self.lost()
        self._queue = [s for s in self._cfg.http if s.on == "connect"]
        return self._go_on(now)

    def lost(self) -> None:
        """The connection is over: answers still to come are stale, the timers stop."""
        self._generation += 1
        self.timers.stop()

    def due(self, now: float) -> list[Action]:
        """The requests of the timed steps whose time has come."""
        return [self._fetch(step, now) for step in self.timers.due(now)]

    def fetched(self, request: HttpRequest, outcome: HttpResult | str, now: float
                ) -> list[Action]:
        """A response, or why there is none: what follows (a ``Fail`` when it fails an attempt,
        or a connection with ``on_error: reconnect``)."""
        step = self._steps.get(request.step)
        if request.generation != self._generation or step is None:
            return []  # an answer for a connection that is gone
        self.timers.out.discard(step.name)  # an ``every`` step may run again
        if isinstance(outcome, str) or not step.accepts(outcome.status):
            why = outcome if isinstance(outcome, str) else f"HTTP {outcome.status}"
            return [failure(step, self._cfg.name, why, getattr(outcome, "status", None))]
        self.results[step.name] = outcome
        if step.deliver:  # data for the routes, not a secret
            out: list[Action] = [Deliver(Message(self._cfg.name, outcome.text,
                                                 self._render.wall(now)))]
        else:
            out = [Redact(found)] if (found := tuple(outcome.secrets())) else []
        return out + (self._go_on(now) if step.on == "connect" else [])

    def address(self, now: float) -> Action:
        """``Dial`` with the URL and headers rendered now, or a ``Fail`` saying why not."""
        try:
            return dial(self._url, self._headers, self._render.context(now))
        except TemplateError as exc:
            why = f"cannot render the url or headers: {exc}"
            return Fail(ConnectFailed(self._cfg.name, why))

    def _go_on(self, now: float) -> list[Action]:
        return [self._fetch(self._queue.pop(0), now) if self._queue else self.address(now)]

    def _fetch(self, step: HttpStep, now: float) -> Action:
        try:
            return Fetch(request(step, self._render.context(now), self._generation))
        except TemplateError as exc:
            return failure(step, self._cfg.name, f"cannot render the request: {exc}", None)
