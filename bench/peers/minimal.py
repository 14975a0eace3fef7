"""Peer pipeline: websockets + gmqtt, publishing without awaiting (a careful hand-made bridge)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import gmqtt
from websockets.asyncio.client import connect


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", default="bench/out")
    parser.add_argument("--qos", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("gmqtt").setLevel(logging.ERROR)
    client = gmqtt.Client(f"bench-minimal-{os.getpid()}")
    await client.connect("127.0.0.1", args.port, keepalive=60)
    publish, topic, qos = client.publish, args.topic, args.qos
    async with connect(args.ws, compression=None, max_size=None) as ws:
        while True:
            publish(topic, await ws.recv(decode=False), qos=qos)


if __name__ == "__main__":
    asyncio.run(main())
