"""The config reference and the schema never disagree: docs/CONFIG.md is generated from it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from bridge.cli import main
from bridge.config.load import load_schema
from bridge.config.reference import markdown

ROOT = Path(__file__).resolve().parents[1]


def test_committed_config_reference_is_generated_from_the_schema() -> None:
    expected = markdown(load_schema()) + "\n"
    committed = (ROOT / "docs" / "CONFIG.md").read_text()
    assert committed == expected, "run: ws-bridge schema --markdown > docs/CONFIG.md"


def test_reference_documents_every_source_and_sink_option() -> None:
    schema = load_schema()
    text = markdown(schema)
    for section in ("source", "mqtt_sink", "file_sink", "stdout_sink", "defaults"):
        for key in schema["$defs"][section]["properties"]:
            assert f"`{key}`" in text, f"{section}.{key} is missing from the reference"


def test_schema_command_prints_a_valid_json_schema(capsys) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed == load_schema()
