"""Peer pipeline: websockets + aiomqtt, awaiting every publish (the obvious first bridge)."""

from __future__ import annotations

import argparse
import asyncio
import os

import aiomqtt
from websockets.asyncio.client import connect


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", default="bench/out")
    parser.add_argument("--qos", type=int, default=0)
    args = parser.parse_args()
    async with aiomqtt.Client(
        "127.0.0.1", args.port, identifier=f"bench-naive-{os.getpid()}"
    ) as client, connect(args.ws, compression=None, max_size=None) as ws:
        async for message in ws:
            await client.publish(args.topic, message, qos=args.qos)


if __name__ == "__main__":
    asyncio.run(main())
