"""Shared fixtures: the scriptable upstream and the Mosquitto broker live in tests/support."""

pytest_plugins = [
    "tests.support.upstream", "tests.support.http_upstream", "tests.support.mosquitto",
]
