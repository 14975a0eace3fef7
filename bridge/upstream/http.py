"""The one place the bridge meets httpx: an HTTP step's request performed, through the source's
TLS and proxy settings, and every httpx failure translated once into a reason the session
turns into the bridge's errors (``ConnectFailed``, ``AuthRejected``).

httpx is imported on first use: it costs a cold start about 80 ms, which only sources with
HTTP steps should pay (``ws-bridge check`` and most configs never do)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

from bridge.errors import SourceError
from bridge.upstream.http_result import HttpRequest, HttpResult
from bridge.upstream.urls import proxy_for, safe_url


async def fetch(request: HttpRequest, tls: ssl.SSLContext | None, proxy: str | None
                ) -> HttpResult | str:
    """The response (any status), or why there is none; never raises for the network.
    ``proxy``: the source's setting (None: the environment's, "" none)."""
    import httpx  # noqa: PLC0415 - on first use, see the module docstring

    chosen = proxy_for(request.url, proxy)
    where = safe_url(request.url)
    try:
        async with httpx.AsyncClient(
            verify=tls if tls is not None else True, trust_env=chosen is True,
            proxy=chosen if isinstance(chosen, str) else None, timeout=request.timeout,
        ) as client:
            response = await client.request(
                request.method, request.url, headers=request.headers, json=request.json,
                data=request.form, content=request.body)
    except httpx.TimeoutException:
        return f"{where}: timed out after {request.timeout:g}s"
    except httpx.ConnectError as exc:
        return f"{where}: {_tls_problem(exc) or 'cannot connect'}"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # its text may quote a URL's token
        return f"{where}: {type(exc).__name__}"
    except (ValueError, ImportError) as exc:  # a proxy httpx cannot use (socks5 needs socksio)
        return f"{where}: cannot use this URL or proxy ({type(exc).__name__})"
    return HttpResult(request.step, response.status_code, response.text, dict(response.headers))


def _tls_problem(exc: BaseException) -> str | None:
    """What TLS refused, when the cause of a failed connect was TLS (httpx wraps it)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason}"
        cause = cause.__cause__ or cause.__context__
    return None


class Fetcher:
    """A source's HTTP requests: before connecting, awaited one at a time (``fetch``); while
    connected, each in a task of its own (``start``) whose outcome goes to ``done``, cancelled
    with the connection (``cancel``). The TLS context is built once, on first use: building
    one costs milliseconds, and ``tls`` raises ``ConnectFailed`` for unreadable files."""

    __slots__ = ("_context", "_done", "_name", "_proxy", "_tasks", "_tls")

    def __init__(self, name: str, proxy: str | None, tls: Callable[[], ssl.SSLContext | None],
                 done: Callable[[HttpRequest, HttpResult | str], None]) -> None:
        self._name, self._proxy, self._tls, self._done = name, proxy, tls, done
        self._context: ssl.SSLContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def fetch(self, request: HttpRequest) -> Awaitable[HttpResult | str]:
        """The request performed; raises ``ConnectFailed`` for the TLS settings."""
        if self._context is None:
            self._context = self._tls()
        return fetch(request, self._context, self._proxy)

    def start(self, request: HttpRequest) -> None:
        task = asyncio.create_task(self._run(request), name=f"http {self._name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _run(self, request: HttpRequest) -> None:
        try:
            outcome = await self.fetch(request)
        except SourceError as exc:  # the TLS settings
            outcome = exc.detail
        self._done(request, outcome)
