"""The atomic tiers are enforced: every module is on the map, in its layer, within its budget."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"atom": 100, "molecule": 200, "organism": 500, "app": 500}
LAYER_OF_TIER = {"app": None, "organism": -3, "molecule": -2, "atom": -1}  # from the bottom


def tier_map() -> dict[str, str]:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = text.split("<!-- tier-map")[1].split("<!-- /tier-map -->")[0]
    rows = re.findall(r"^\| ([\w.]+) \| (\w+) \|", block, flags=re.M)
    return {module: tier for module, tier in rows if module != "module"}


def package_modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "bridge").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            continue
        found[".".join(parts)] = path
    return found


def contract(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return parser[f"importlinter:contract:{name}"]


def contract_layers() -> list[set[str]]:
    lines = [ln.strip() for ln in contract("tiers")["layers"].splitlines()]
    return [set(re.split(r"\s*[|:]\s*", ln)) for ln in lines if ln]


def test_every_module_is_on_the_tier_map_and_nothing_else() -> None:
    assert set(package_modules()) == set(tier_map())


def test_every_module_is_within_its_tier_line_budget() -> None:
    mapping = tier_map()
    over = {
        name: (len(path.read_text().splitlines()), mapping[name])
        for name, path in package_modules().items()
        if len(path.read_text().splitlines()) >= BUDGET[mapping.get(name, "atom")]
    }
    assert over == {}, f"modules at or over their tier budget: {over}"


def test_import_contract_layers_match_the_tier_map() -> None:
    layers = contract_layers()
    for module, tier in tier_map().items():
        index = LAYER_OF_TIER[tier]
        if index is None:
            assert any(module in layer for layer in layers[:-3]), module
        else:
            assert module in layers[index], f"{module} ({tier}) is not in layer {index}"


def test_every_atom_is_in_the_no_io_contract() -> None:
    pure = contract("pure")
    sources = set(pure["source_modules"].split())
    atoms = {module for module, tier in tier_map().items() if tier == "atom"}
    assert atoms - sources == set(), "atoms missing from the `pure` contract of .importlinter"
    assert {"asyncio", "socket", "ssl"} <= set(pure["forbidden_modules"].split())


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
