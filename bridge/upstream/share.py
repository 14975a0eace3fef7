"""One pooled connection's config: the source's, for its share of the items.

Each subscribe (and unsubscribe) step with ``each`` becomes one step per batch of the share's
items, its ``send`` filled in: ``"{items}"`` alone becomes the batch as a JSON list, ``"{item}"``
alone the item, and inside longer text they become the items joined by commas. ``{items}`` in
the URL becomes the share's items joined by ``pool.url_join``. Items are literal text: braces in
them never read as placeholders."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bridge.config.model import SourceConfig
from bridge.config.pooling import ITEMS
from bridge.config.specs import Step
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.routing.text import PLACEHOLDER


def share_config(cfg: SourceConfig, items: tuple[str, ...]) -> SourceConfig:
    """``cfg`` for a connection that carries ``items``: every step, each-steps per batch."""
    join = cfg.pool.url_join if cfg.pool is not None else ","
    url = cfg.url.replace(ITEMS, _literal(join.join(items)))  # a template: rendered to dial
    return replace(cfg, url=url,
                   subscribe=expand(cfg.subscribe, items),
                   unsubscribe=expand(cfg.unsubscribe, items))


def expand(steps: tuple[Step, ...], items: tuple[str, ...]) -> tuple[Step, ...]:
    """``steps`` with each-steps sent per batch of ``items`` (none for no items)."""
    out: list[Step] = []
    for step in steps:
        if not step.each:
            out.append(step)
            continue
        for start in range(0, len(items), step.batch):
            batch = items[start:start + step.batch]
            out.append(replace(step, send=Template(_fill(step.send.spec, batch)),
                               when=_when(step.when, batch), each=False, items=batch))
    return tuple(out)


def each_steps(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """Only the steps sent per item: what adding or removing items sends."""
    return tuple(step for step in steps if step.each)


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _fill(spec: Any, batch: tuple[str, ...]) -> Any:
    """The send spec with ``{items}``/``{item}`` filled in, as literal template text."""
    if isinstance(spec, dict):
        return {key: _fill(value, batch) for key, value in spec.items()}
    if isinstance(spec, list):
        return [_fill(value, batch) for value in spec]
    if not isinstance(spec, str):
        return spec
    if spec == ITEMS:
        return [_literal(item) for item in batch]
    if spec == "{item}":
        return _literal(batch[0])

    def one(match: Any) -> str:
        name, fields = match.group(1), match.group(2)
        if fields or name not in ("items", "item"):
            return str(match.group(0))
        return _literal(",".join(batch) if name == "items" else batch[0])

    return PLACEHOLDER.sub(one, spec)


def _when(when: Pattern | None, batch: tuple[str, ...]) -> Pattern | None:
    """A ``when`` whose values say ``{item}`` matches that item's messages (``batch: 1``)."""
    if when is None or len(batch) != 1:
        return when
    return Pattern(_plain(when.spec, batch[0]))


def _plain(spec: Any, item: str) -> Any:
    if isinstance(spec, dict):
        return {key: _plain(value, item) for key, value in spec.items()}
    return item if spec == "{item}" else spec
