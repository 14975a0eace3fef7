"""Memory floor: one Python process holding N idle websockets connections, and nothing else."""

from __future__ import annotations

import argparse
import asyncio

from websockets.asyncio.client import ClientConnection, connect


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws", required=True)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    held: list[ClientConnection] = []
    for _ in range(args.count):
        held.append(await connect(args.ws, compression=None, max_size=None))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
