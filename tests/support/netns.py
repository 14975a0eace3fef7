"""Network faults for real: a network namespace behind veth links, nftables DROP and a slow link.

The bridge stays in the root namespace; the upstream, the broker or both run inside a namespace
this fixture creates, so the bridge's TCP connections cross a link the test can degrade.

    root namespace                              namespace NAME
    bridge ── fault link  10.231.K.1/30 ══ veth ══ 10.231.K.2 ── upstream / broker
    tests  ── clean link  10.231.K.5/30 ══ veth ══ 10.231.K.6 ── (the same servers)
    bridge ── slow link   10.231.K.9    ══ tun  ══ 10.231.K.10   (only once delay() opened it)

The bridge is configured with ``fault_addr`` (or the slow link's address); the test's own MQTT
subscriber and readiness checks use ``clean_addr``, so a fault hits the bridge, never the oracle.

Every fault acts on IP packets in the kernel's path, so TCP sees it as it would on a bad network
(retransmits, RTT, half-open peers). The kernels this suite runs on (Firecracker VMs) are built
without sch_netem, so ``tc netem`` is not used: loss is nftables' ``numgen random`` and latency
a pair of tun devices whose packets the test's event loop carries across late.

Fixture
-------
``netns``
    ``netns() -> NetNs``: a namespace named uniquely for this run (``wsb-<hex>``). Creating
    it needs root, ``ip`` (iproute2), ``nft`` (nftables; tests/support/ensure-tools.sh
    installs both) and /dev/net/tun: where that fails the test FAILS with the reason, it is
    never skipped.
    Teardown kills what still runs inside it, deletes its links and then it, by name.

NetNs
-----
``name``, ``fault_addr``, ``clean_addr``.
``delay(ms, jitter_ms)``   opens the slow link and returns the namespace's address on it:
                           each packet waits ms +- jitter_ms, each direction (before the bridge
                           starts; the link lives until teardown).
``loss(percent)``          nftables drops that share of packets on the fault link, both ways.
``partition()``            nftables drops every packet on the fault link, both ways (SYNs and
                           data): established connections go half-open, new ones time out.
``dropped()``              packets the loss or partition dropped so far; ``carried``: packets
                           the slow link carried (each proves the fault was in the path).
``heal()``                 removes the loss or partition (the DROP table).
``listen(host, port)``     a listening TCP socket made inside the namespace (for
                           ``Upstream(listen=...)``): a socket keeps the namespace it was
                           created in, so the test's own event loop serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio

CLONE_NEWNET = 0x40000000
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
T = TypeVar("T")
_TABLE = "wsb_fault"


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _attach_tun(name: str) -> int:
    """An open, non-blocking fd carrying the IP packets of the tun device ``name``."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _write(fd: int, packet: bytes) -> None:
    with contextlib.suppress(OSError):  # the link was torn down meanwhile: the packet is lost
        os.write(fd, packet)


def _free_subnet() -> int:
    """A K for 10.231.K.0/24 that no interface of the root namespace uses yet."""
    used = _run("ip", "-o", "-4", "addr", "show")
    for _ in range(64):
        k = secrets.randbelow(256)
        if f"10.231.{k}." not in used:
            return k
    raise RuntimeError("no free 10.231.K.0/24 subnet for a test namespace")


class NetNs:
    """One network namespace and its two veth links; see the module docstring."""

    def __init__(self) -> None:
        self.name = f"wsb-{secrets.token_hex(3)}"
        k = _free_subnet()
        self.fault_addr, self.clean_addr = f"10.231.{k}.2", f"10.231.{k}.6"
        self._fault_veth = (f"{self.name}-f", f"{self.name}-fi")  # (root end, namespace end)
        self._clean_veth = (f"{self.name}-c", f"{self.name}-ci")
        self._k = k
        self._tun_outer = ""
        self._tun_fds: tuple[int, ...] = ()
        self.carried = 0  # packets the slow link carried

    def create(self) -> None:
        k = self._k
        inside = ("ip", "netns", "exec", self.name)
        _run("ip", "netns", "add", self.name)
        _run(*inside, "ip", "link", "set", "lo", "up")
        for (outer, inner), base in ((self._fault_veth, 0), (self._clean_veth, 4)):
            _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner,
                 "netns", self.name)
            _run("ip", "addr", "add", f"10.231.{k}.{base + 1}/30", "dev", outer)
            _run("ip", "link", "set", outer, "up")
            _run(*inside, "ip", "addr", "add", f"10.231.{k}.{base + 2}/30", "dev", inner)
            _run(*inside, "ip", "link", "set", inner, "up")

    def _inside(self, *args: str) -> str:
        return _run("ip", "netns", "exec", self.name, *args)

    def delay(self, ms: int, jitter_ms: int) -> str:
        """Opens the slow link and returns the namespace's address on it: a tun device at each
        end, whose IP packets this process carries across after ``ms`` +- ``jitter_ms`` (each
        packet drawn on its own, so they may overtake each other, as with netem's jitter).
        Kernels built without sch_netem (tc netem) have tun. Call from the event loop."""
        k, outer, inner = self._k, f"{self.name}-s", f"{self.name}-si"
        inside = ("ip", "netns", "exec", self.name)
        _run("ip", "tuntap", "add", "dev", outer, "mode", "tun")
        self._tun_outer = outer
        _run(*inside, "ip", "tuntap", "add", "dev", inner, "mode", "tun")
        for prefix, dev, here, there in (((), outer, 9, 10), (inside, inner, 10, 9)):
            _run(*prefix, "ip", "addr", "add", f"10.231.{k}.{here}", "peer",
                 f"10.231.{k}.{there}", "dev", dev)
            _run(*prefix, "ip", "link", "set", dev, "up")
        ends = (_attach_tun(outer), self._in_namespace(lambda: _attach_tun(inner)))
        self._tun_fds = ends
        loop = asyncio.get_running_loop()

        def carry(src: int, dst: int) -> None:
            packet = os.read(src, 65536)
            self.carried += 1
            wait = (ms + random.uniform(-jitter_ms, jitter_ms)) / 1000
            loop.call_later(wait, _write, dst, packet)

        loop.add_reader(ends[0], carry, ends[0], ends[1])
        loop.add_reader(ends[1], carry, ends[1], ends[0])
        return f"10.231.{k}.10"

    def loss(self, percent: int) -> None:
        # nftables' random numbers, not netem: the same kernel-level drop of single packets,
        # on kernels built without sch_netem too.
        self._drop(f"numgen random mod 100 < {percent}")

    def partition(self) -> None:
        self._drop("")

    def _drop(self, condition: str) -> None:
        """Drops packets on the fault link both ways (those matching ``condition``), from inside
        the namespace, so the root namespace's firewall is never touched."""
        inner = self._fault_veth[1]
        rules = (f"table inet {_TABLE} {{\n"
                 f"  chain rx {{ type filter hook input priority 0;"
                 f" iifname \"{inner}\" {condition} counter drop; }}\n"
                 f"  chain tx {{ type filter hook output priority 0;"
                 f" oifname \"{inner}\" {condition} counter drop; }}\n"
                 "}\n")
        done = subprocess.run(["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=rules,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"nft in {self.name} failed: {done.stderr.strip()}")

    def dropped(self) -> int:
        """Packets the loss or partition dropped so far, both ways."""
        listing = self._inside("nft", "list", "table", "inet", _TABLE)
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))

    def heal(self) -> None:
        self._inside("nft", "delete", "table", "inet", _TABLE)

    def _in_namespace(self, make: Callable[[], T]) -> T:
        """Runs ``make`` on a short-lived thread moved into the namespace (setns changes only
        the calling thread): sockets and tun devices keep the namespace they were made in."""
        made: list[T | BaseException] = []

        def in_namespace() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                with Path(f"/run/netns/{self.name}").open("rb") as ns:
                    if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.name}")
                made.append(make())
            except BaseException as exc:  # handed to the caller's thread
                made.append(exc)

        thread = threading.Thread(target=in_namespace)
        thread.start()
        thread.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        return made[0]

    def listen(self, host: str, port: int) -> socket.socket:
        def bound() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock

        return self._in_namespace(bound)

    def delete(self) -> None:
        if self._tun_fds:
            loop = asyncio.get_running_loop()
            for fd in self._tun_fds:
                loop.remove_reader(fd)
            for fd in self._tun_fds:
                os.close(fd)
        # The root namespace's ends go by name now: a namespace lingers unnamed while closing
        # TCP sockets inside it still retransmit, and its links must not linger with it.
        for outer in (self._fault_veth[0], self._clean_veth[0], self._tun_outer):
            with contextlib.suppress(RuntimeError):  # never made, or gone already
                if outer:
                    _run("ip", "link", "del", outer)
        with contextlib.suppress(RuntimeError):
            for pid in _run("ip", "netns", "pids", self.name).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)  # only processes inside our own namespace
        with contextlib.suppress(RuntimeError):
            _run("ip", "netns", "del", self.name)


@pytest_asyncio.fixture
async def netns() -> AsyncIterator[Callable[[], NetNs]]:
    made: list[NetNs] = []

    def make() -> NetNs:
        if os.geteuid() != 0:
            pytest.fail("network fault tests need root (ip netns, nft, tun); run them as root")
        try:
            made.append(NetNs())
            made[-1].create()  # listed first: a half-made namespace is deleted at teardown
        except (RuntimeError, OSError) as exc:
            pytest.fail(f"cannot create a network namespace for the fault tests: {exc}")
        return made[-1]

    yield make
    for ns in made:
        ns.delete()
