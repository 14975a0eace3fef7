"""Load-time placeholders ``${env:NAME}``, ``${env:NAME:-default}``, ``${file:PATH}``; redaction.

Resolved values are secrets by nature (tokens, passwords from systemd credentials), so every
resolved value is returned for redaction and no error message ever contains one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

# `$${` is a literal `${`; a `${` with no closing brace is an error rather than silently kept.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_FILE = re.compile(r"file:(.+)", re.DOTALL)
HELP = "write ${env:NAME}, ${env:NAME:-default} or ${file:PATH} ($${ for a literal ${)"


class PlaceholderError(ValueError):
    """A load-time placeholder cannot be resolved; the message never holds a resolved value."""


def resolve(
    text: str,
    env: Mapping[str, str],
    read_file: Callable[[str], str],
    quote: Callable[[str], str] | None = None,
) -> tuple[str, frozenset[str]]:
    """``text`` with every placeholder replaced, and the set of values substituted.

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


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``; longer secrets win over their substrings."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return text
    return re.sub("|".join(map(re.escape, ordered)), "***", text)
