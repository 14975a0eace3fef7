"""The config reference in Markdown, generated from the JSON Schema so the two never disagree."""

from __future__ import annotations

import json
from typing import Any

Schema = dict[str, Any]
SECTIONS = (("Top level", "#"), ("Defaults (`defaults:`)", "#/$defs/defaults"),
            ("Sources (`sources[]`)", "#/$defs/source"), ("Routes (`sources[].routes[]`)",
            "#/$defs/route"), ("stdout sink", "#/$defs/stdout_sink"),
            ("file sink", "#/$defs/file_sink"), ("mqtt sink", "#/$defs/mqtt_sink"),
            ("websocket sink", "#/$defs/websocket_sink"))


def _resolve(root: Schema, node: Schema) -> Schema:
    while "$ref" in node:
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target: Schema = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part] if part else target
        node = {**target, **extra}
    return node


def _type(node: Schema) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    kind = node.get("type", "any")
    text = " \\| ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array" and isinstance(node.get("items"), dict):
        text += f" of {node['items'].get('type', 'object')}"
    return text


def _rows(root: Schema, node: Schema, prefix: str, depth: int) -> list[str]:
    rows: list[str] = []
    required = set(node.get("required", ()))
    for key, raw in node.get("properties", {}).items():
        sub = _resolve(root, raw)
        path = f"{prefix}{key}"
        default = f"`{json.dumps(sub['default'])}`" if "default" in sub else ""
        example = f"`{json.dumps(sub['examples'][0])}`" if sub.get("examples") else ""
        description = " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")
        need = "yes" if key in required else ""
        rows.append(f"| `{path}` | {_type(sub)} | {need} | {default} | {example} | {description} |")
        is_nested = sub.get("type") == "object" and "properties" in sub
        if is_nested and depth < 3 and raw.get("$ref", "").rsplit("/", 1)[-1] not in _SECTION_DEFS:
            rows += _rows(root, sub, f"{path}.", depth + 1)
    return rows


_SECTION_DEFS = {ref.rsplit("/", 1)[-1] for _, ref in SECTIONS}


def markdown(schema: Schema) -> str:
    """Every option with its type, default, an example and its description, section by section."""
    out = ["# Configuration reference", "",
           "Generated from the JSON Schema by `ws-bridge schema --markdown`; do not edit by hand.",
           ""]
    for title, ref in SECTIONS:
        node = _resolve(schema, {"$ref": ref}) if ref != "#" else schema
        out += [f"## {title}", "", str(node.get("description", "")), "",
                "| key | type | required | default | example | description |",
                "|---|---|---|---|---|---|", *_rows(schema, node, "", 0), ""]
    return "\n".join(out)
