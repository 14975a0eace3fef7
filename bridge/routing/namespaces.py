"""Run-time namespaces: placeholder roots whose values the session fills while it runs.

A namespace is a root such as ``http`` in ``{http.bullet.json.token}``. Its value lives in
``Context.names[root]``, put there by whoever renders (the session's ``Renderer``), and the
placeholder's path walks into it like ``{msg...}`` walks a message. Adding a namespace is one
entry in ``NAMESPACES``; the value's owner fills ``names`` under the same key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bridge.routing.context import Context, TemplateError, Unset

# root -> what it reads (shown in errors and the docs)
NAMESPACES: Final = {
    "http": "the latest response of an HTTP step: {http.NAME.status|text|json...|headers.NAME}",
    "sign": "a signature computed for this render: {sign.NAME}",
    "jwt": "a JSON Web Token made for this render: {jwt.NAME}",
    "var": "a value captured from a server message: {var.NAME}",
}


def namespace_getter(root: str, steps: list[str | int], name: str) -> Callable[[Context], Any]:
    """The getter of ``{root<steps>}`` (``name`` is the placeholder as written): the first
    step names an entry of the namespace, the rest walk into its value."""
    if not steps or not isinstance(steps[0], str):
        raise TemplateError(f"{name} needs a name: {{{root}.NAME}}")
    entry = steps[0]

    def get(ctx: Context) -> Any:
        space = ctx.names.get(root)
        if space is None or entry not in space:
            if root == "var":  # not captured yet: the send waits for it (``Unset``)
                raise Unset(entry)
            raise TemplateError(f"{name}: {root} {entry!r} has no value (yet)")
        value = space[entry]
        try:
            for step in steps[1:]:
                value = value[step]
        except (KeyError, IndexError, TypeError):
            raise TemplateError(f"{name}: no such field in {root} {entry!r}") from None
        return value

    return get
