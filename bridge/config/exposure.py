"""Where a config would expose its credentials: sent over plain ws:// to another host (refused
unless ``allow_insecure``), or written in a file that other users can read (a warning), be it
the config file or a file read by ``${file:}``."""

from __future__ import annotations

import ipaddress
from typing import Any

from bridge.config.credentials import sent_credentials, split_url


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: localhost, 127.0.0.0/8 or ::1 (also IPv4-mapped)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def insecure_problem(source: dict[str, Any]) -> str | None:
    """Why ``source`` must not run as written: credentials over plain ws:// to another host."""
    url = source.get("url")
    if source.get("allow_insecure") is True or not isinstance(url, str) or "${" in url:
        return None  # an unresolved placeholder is reported on its own
    parts, what = split_url(url), sent_credentials(source)
    host = (parts.hostname or "") if parts else ""
    if parts is None or parts.scheme != "ws" or not what or is_loopback(host):
        return None
    listed = " and ".join([", ".join(what[:-1]), what[-1]] if len(what) > 1 else what)
    return (f"{listed} would travel unencrypted over ws:// to {host}, which is not this machine;"
            " use wss://, or set allow_insecure: true if you trust every network hop")


def exposure_warnings(file: str, mode: int, found: set[str]) -> tuple[str, ...]:
    """A warning when ``file`` (``found``: find_secrets before resolving) is readable by others."""
    if not mode & 0o044 or not {s for s in found if "${" not in s}:
        return ()
    who = _readers(mode)
    return (f"{file} holds credentials written in it and is readable by {who}: run chmod 600"
            f" {file}, or move them out with ${{env:NAME}}, ${{file:PATH}} or systemd credentials"
            " (LoadCredential=, then ${file:/run/credentials/<unit>/<name>})",)


def secret_file_warnings(files: dict[str, int]) -> tuple[str, ...]:
    """A warning for each file read by ``${file:}`` (name: mode) that others can read."""
    return tuple(
        f"{name}, read by ${{file:{name}}}, holds a secret and is readable by {_readers(mode)}:"
        f" run chmod 600 {name}, or use systemd credentials (LoadCredential=, then"
        " ${file:/run/credentials/<unit>/<name>})"
        for name, mode in sorted(files.items()) if mode & 0o044
    )


def _readers(mode: int) -> str:
    return "everyone" if mode & 0o004 else "its group"
