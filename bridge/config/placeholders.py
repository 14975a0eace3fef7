"""Load-time placeholders ``${env:NAME}``, ``${env:NAME:-default}``, ``${file:PATH}``; redaction.

A ``${file:}`` value is a secret by nature (a token, a password from systemd credentials), and so
is a value put into a URL's path or query (a listen key, a token); an ``${env:}`` value elsewhere
is a secret only where it lands in a secret place (a password, a credential header...), which
the loader finds after resolving. No error message ever contains a resolved value;
``bridge.redaction`` masks the secrets in what is shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

# `$${` is a literal `${`; a `${` with no closing brace is an error rather than silently kept.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_FILE = re.compile(r"file:(.+)", re.DOTALL)
# What comes before a value put in a URL's path or query (a listen key, a token), not its host
_URL_REST = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*[/?]")
HELP = "write ${env:NAME}, ${env:NAME:-default} or ${file:PATH} ($${ for a literal ${)"


class PlaceholderError(ValueError):
    """A load-time placeholder cannot be resolved; the message never holds a resolved value."""


def resolve(
    text: str,
    env: Mapping[str, str],
    read_file: Callable[[str], str],
    quote: Callable[[str], str] | None = None,
    *,
    secret: bool = False,
) -> tuple[str, frozenset[str]]:
    """``text`` with every placeholder replaced, and the secrets among the values substituted:
    every ``${file:}`` value, any value in a URL's path or query, every value when ``secret``.

    ``quote`` is applied to each substituted value (e.g. to escape braces when ``text`` is a
    run-time template, so a secret containing ``{x}`` is never read as a placeholder).
    """
    found: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            raise PlaceholderError(f"unterminated placeholder '${{'; {HELP}")
        value = _lookup(body, env, read_file)
        if secret or body.startswith("file:") or _URL_REST.match(text, 0, match.start()):
            found.add(value)
        return quote(value) if quote else value

    return _TOKEN.sub(substitute, text), frozenset(found)


def _lookup(body: str, env: Mapping[str, str], read_file: Callable[[str], str]) -> str:
    if match := _ENV.fullmatch(body):
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        # Like the shell's `:-`, the default also covers a variable that is set but empty.
        if value is None or (value == "" and default is not None):
            if default is None:
                raise PlaceholderError(
                    f"environment variable {name} is not set"
                    f" (set it, or write ${{env:{name}:-default}})"
                )
            return default
        return value
    if match := _FILE.fullmatch(body):
        path = match.group(1)
        try:
            content = read_file(path)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise PlaceholderError(f"cannot read ${{file:{path}}}: {reason}") from None
        except UnicodeDecodeError:
            raise PlaceholderError(f"cannot read ${{file:{path}}}: not UTF-8 text") from None
        for newline in ("\r\n", "\n"):
            if content.endswith(newline):
                return content[: -len(newline)]
        return content
    raise PlaceholderError(f"unknown placeholder '${{{body}}}'; {HELP}")
