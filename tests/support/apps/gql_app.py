"""A real strawberry-graphql server over graphql-transport-ws under uvicorn, for the
``graphql-ws`` preset's tests.

``python -m tests.support.apps.gql_app PORT TOKEN``: ``connection_init`` must carry
``{token: TOKEN}`` (else strawberry closes with 4403 Forbidden); ``subscription { count }``
yields 1, 2, 3, ... every 20 ms; ``subscription { broken }`` fails at once (an ``error``
message). Lifecycle lines go to stdout (``ready``, ``init``, ``refused``, ``subscribed``,
``ended``, and ``complete ID`` for each complete message a client sends) for the tests to
read."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
import uvicorn
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

PORT, TOKEN = int(sys.argv[1]), sys.argv[2]


def say(*words: object) -> None:
    print(*words, flush=True)


@strawberry.type
class Query:
    hello: str = "world"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self) -> AsyncGenerator[int, None]:
        say("subscribed")
        try:
            n = 0
            while True:
                n += 1
                yield n
                await asyncio.sleep(0.02)
        finally:
            say("ended")

    @strawberry.subscription
    async def broken(self) -> AsyncGenerator[int, None]:
        raise ValueError("no such feed")
        yield 0  # pragma: no cover - makes this a generator


class App(GraphQL[Any, Any]):
    async def on_ws_connect(self, context: dict[str, Any]) -> None:
        if context["connection_params"].get("token") != TOKEN:
            say("refused")
            raise ConnectionRejectionError()
        say("init")


schema = strawberry.Schema(query=Query, subscription=Subscription)
graphql_app = App(schema, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])


async def app(scope: Any, receive: Any, send: Any) -> None:
    """strawberry's app, with each ``complete`` a client sends written to stdout."""

    async def seen() -> Any:
        event = await receive()
        text = event.get("text") or ""
        if event.get("type") == "websocket.receive" and '"complete"' in text:
            say("complete", json.loads(text).get("id"))
        return event

    await graphql_app(scope, seen, send)


async def main() -> None:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=PORT, log_level="error",
                                           ws="websockets-sansio"))
    serve = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    say("ready")
    await serve


if __name__ == "__main__":
    asyncio.run(main())
