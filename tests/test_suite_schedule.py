"""The suite's own scheduling tables (``tests/conftest.py``) name units that exist."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FIRST_UNITS, SHARED_UNITS

ROOT = Path(__file__).resolve().parents[1]


def test_every_shared_unit_module_exists_and_every_group_has_two() -> None:
    for module in SHARED_UNITS:
        assert (ROOT / module).is_file(), module
    groups = list(SHARED_UNITS.values())
    assert all(groups.count(g) >= 2 for g in groups), "a group of one shares nothing"


def test_every_first_unit_is_a_module_or_a_shared_group_once() -> None:
    groups = set(SHARED_UNITS.values())
    assert len(set(FIRST_UNITS)) == len(FIRST_UNITS)
    for unit in FIRST_UNITS:
        assert unit in groups or (ROOT / unit).is_file(), f"{unit}: no such module or group"
        # A module of a shared group is scheduled with its group, never as a unit of its own.
        assert unit not in SHARED_UNITS, f"{unit}: name its group {SHARED_UNITS.get(unit)!r}"
