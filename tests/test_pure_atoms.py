"""Every atom on the tier map is in the ``pure`` (no I/O) import contract, so a new atom cannot
import asyncio, sockets, ssl or third-party I/O unnoticed (as ``mqtt_incoming`` once did)."""

from __future__ import annotations

import configparser

from tests.test_architecture import ROOT, tier_map


def pure_contract() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    listed = parser["importlinter:contract:pure"]["source_modules"].split()
    return set(listed)


def test_every_atom_is_in_the_no_io_contract() -> None:
    atoms = {module for module, tier in tier_map().items() if tier == "atom"}
    assert atoms - pure_contract() == set()
