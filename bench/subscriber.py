"""The counting MQTT subscriber: a bare MQTT 3.1.1 client so that it is never the bottleneck.

Run as a child of run.py. Commands on stdin, JSON events on stdout:
  arm N LATENCY MAX_WAIT IDLE   start a round expecting seq 0..N-1; LATENCY=1 records now - ts
It answers {"ev": "armed"}, prints {"ev": "primed"} for each seq -1 message, and {"ev": "done"}
when the round has all N distinct messages, when IDLE seconds pass without a message, or MAX_WAIT
seconds after arming.
Parsing is done in bulk per socket read; QoS 1 PUBACKs for one read go out in one write.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import time
from array import array

PING_EVERY = 20.0
BATCH = 256 * 1024


def emit(**event: object) -> None:
    print(json.dumps(event), flush=True)


def packet(kind: int, body: bytes) -> bytes:
    n = len(body)
    length = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes((kind,)) + bytes(length) + body


def mqtt_str(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def connect(port: int, topic: str, qos: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    client_id = f"bench-sub-{os.getpid()}"
    sock.sendall(packet(0x10, mqtt_str("MQTT") + bytes((4, 0x02, 0, 60)) + mqtt_str(client_id)))
    connack = sock.recv(4)
    if len(connack) < 4 or connack[0] != 0x20 or connack[3] != 0:
        raise SystemExit(f"subscriber: CONNACK refused: {connack!r}")
    sock.sendall(packet(0x82, b"\x00\x01" + mqtt_str(topic) + bytes((qos,))))
    suback = sock.recv(5)
    if len(suback) < 5 or suback[0] != 0x90 or suback[4] > 2:
        raise SystemExit(f"subscriber: SUBACK refused: {suback!r}")
    sock.setblocking(False)
    return sock


class Round:
    def __init__(self, n: int, latency: bool, max_wait: float, idle: float) -> None:
        self.n = n
        self.latency = latency
        self.deadline = time.monotonic() + max_wait
        self.idle = idle
        self.seen = bytearray(n)
        self.unique = 0
        self.received = 0
        self.reordered = 0
        self.last_seq = -1
        self.first = 0.0
        self.first_n = 0  # messages in the first read: the rate counts those after it
        self.last = 0.0
        self.lat = array("q")

    def finished(self, now: float) -> bool:
        if self.unique >= self.n or now > self.deadline:
            return True
        return self.received > 0 and now - self.last > self.idle

    def report(self) -> None:
        result: dict[str, object] = {
            "ev": "done", "expected": self.n, "unique": self.unique, "received": self.received,
            "duplicates": self.received - self.unique, "reordered": self.reordered,
            "first": self.first, "first_n": self.first_n, "last": self.last,
        }
        if self.latency and self.lat:
            lat = sorted(self.lat)

            def pick(q: float) -> float:
                return lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6

            result.update(p50_ms=pick(0.50), p99_ms=pick(0.99), p999_ms=pick(0.999),
                          max_ms=lat[-1] / 1e6)
        emit(**result)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", default="bench/out")
    parser.add_argument("--qos", type=int, default=0)
    args = parser.parse_args()
    sock = connect(args.port, args.topic, args.qos)
    emit(ev="ready")
    stdin = 0
    pending = b""
    rnd: Round | None = None
    buf = b""
    last_ping = time.monotonic()
    while True:
        readable, _, _ = select.select([sock.fileno(), stdin], [], [], 0.05)
        now = time.monotonic()
        if stdin in readable:
            chunk = os.read(stdin, 4096)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                cmd = line.split()
                if cmd and cmd[0] == b"quit":
                    return
                if cmd and cmd[0] == b"arm":
                    rnd = Round(int(cmd[1]), cmd[2] == b"1", float(cmd[3]), float(cmd[4]))
                    emit(ev="armed")
        if sock.fileno() in readable:
            data = sock.recv(1 << 20)
            if not data:
                emit(ev="error", reason="broker closed the connection")
                return
            now_ns = time.monotonic_ns()
            now = now_ns / 1e9
            buf = buf + data if buf else data
            buf = consume(buf, sock, rnd, now, now_ns)
            if len(data) < BATCH and not (rnd is not None and rnd.latency):
                # Counting throughput: let messages pile up in the socket rather than wake up
                # for each one, so the instrument leaves the CPU to the pipeline it measures.
                time.sleep(0.001)
        if now - last_ping > PING_EVERY:
            sock.sendall(b"\xc0\x00")
            last_ping = now
        if rnd is not None and rnd.finished(now):
            rnd.report()
            rnd = None


def consume(buf: bytes, sock: socket.socket, rnd: Round | None, now: float, now_ns: int) -> bytes:
    """Handle every whole packet in ``buf``; return the incomplete rest."""
    pos = 0
    end = len(buf)
    acks = []
    primed = 0
    while pos + 2 <= end:
        b0 = buf[pos]
        length = 0
        shift = 0
        p = pos + 1
        while p < end:
            byte = buf[p]
            length |= (byte & 0x7F) << shift
            p += 1
            if byte < 0x80:
                break
            shift += 7
        else:
            break  # the length itself is incomplete
        stop = p + length
        if stop > end:
            break
        if b0 >> 4 == 3:
            start = p + 2 + (buf[p] << 8 | buf[p + 1])
            if b0 & 0x06:
                acks.append(b"\x40\x02" + buf[start : start + 2])
                start += 2
            if buf[start + 7] == 45:  # '-': a prime message
                primed += 1
            elif rnd is not None:
                comma = buf.index(b",", start + 7)
                seq = int(buf[start + 7 : comma])
                rnd.received += 1
                if seq < rnd.n and not rnd.seen[seq]:
                    rnd.seen[seq] = 1
                    rnd.unique += 1
                if seq < rnd.last_seq:
                    rnd.reordered += 1
                rnd.last_seq = seq
                if rnd.latency:
                    ts_end = buf.index(b",", comma + 6)
                    rnd.lat.append(now_ns - int(buf[comma + 6 : ts_end]))
        pos = stop
    if acks:
        sock.setblocking(True)
        sock.sendall(b"".join(acks))
        sock.setblocking(False)
    if rnd is not None and rnd.received:
        if not rnd.first:
            rnd.first, rnd.first_n = now, rnd.unique
        rnd.last = now
    for _ in range(primed):
        emit(ev="primed")
    return buf[pos:]


if __name__ == "__main__":
    main()
