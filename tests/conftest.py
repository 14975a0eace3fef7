"""Shared fixtures: the scriptable WebSocket and HTTP upstreams, the Mosquitto broker, the real
upstream servers (Socket.IO, GraphQL, NATS, RabbitMQ web-stomp), the daemon runner (``spawn``)
and the network fault namespace live in tests/support; tests/support/leaks.py checks after every
test that its daemons showed no secret."""

pytest_plugins = [
    "tests.support.daemon",
    "tests.support.upstream",
    "tests.support.http_upstream",
    "tests.support.mosquitto",
    "tests.support.real_upstreams",
    "tests.support.netns",
    "tests.support.leaks",
]
