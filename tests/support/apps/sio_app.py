"""A real python-socketio 5 ASGI server under uvicorn, for the ``socketio`` preset's tests.

``python -m tests.support.apps.sio_app PORT TOKEN``: clients connect with ``auth: {token}``
(another token is refused: ``44{"message": "bad token"}``); ``join ROOM`` puts a client in a
room, which then gets ``tick`` events ``{symbol, n}`` every 20 ms. Lifecycle lines go to stdout
(``ready``, ``connect``, ``refused``, ``join``, ``disconnect REASON``) for the tests to read."""

from __future__ import annotations

import asyncio
import sys

import socketio
import uvicorn

PORT, TOKEN = int(sys.argv[1]), sys.argv[2]
sio = socketio.AsyncServer(async_mode="asgi", ping_interval=1, ping_timeout=5)
app = socketio.ASGIApp(sio)
rooms: set[str] = set()


def say(*words: object) -> None:
    print(*words, flush=True)


@sio.event
async def connect(sid: str, environ: dict[str, object], auth: dict[str, str] | None) -> None:
    if not auth or auth.get("token") != TOKEN:
        say("refused", sid)
        raise socketio.exceptions.ConnectionRefusedError("bad token")
    say("connect", sid)


@sio.event
async def join(sid: str, room: str) -> None:
    await sio.enter_room(sid, room)
    rooms.add(room)
    say("join", sid, room)


@sio.event
async def disconnect(sid: str, reason: str = "") -> None:
    say("disconnect", sid, reason)


async def ticks() -> None:
    n = 0
    while True:
        await asyncio.sleep(0.02)
        n += 1
        for room in rooms:
            await sio.emit("tick", {"symbol": room, "n": n}, room=room)


async def main() -> None:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=PORT, log_level="error",
                                           ws="websockets-sansio"))
    task = asyncio.create_task(ticks())
    serve = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    say("ready")
    await serve
    task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
