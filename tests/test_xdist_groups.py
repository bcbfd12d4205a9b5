"""``make test`` runs on two xdist workers (``--dist loadgroup``): each module is one group, and the
modules that share an expensive session fixture (a real pipeline run, real Triton traffic) are one
group, so that fixture is built once per run, not once per worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import SHARED_ONCE, xdist_groups

ROOT = Path(__file__).resolve().parents[1]


def test_a_module_is_its_own_group() -> None:
    groups = xdist_groups({"tests/test_a.py": {"tmp_path"}, "tests/test_b.py": set()})
    assert groups == {"tests/test_a.py": "tests/test_a.py", "tests/test_b.py": "tests/test_b.py"}


def test_modules_sharing_an_expensive_fixture_share_a_worker() -> None:
    groups = xdist_groups(
        {
            "tests/test_privacy.py": {"training_run", "tmp_path"},
            "tests/test_training.py": {"training_workdir", "training_run"},
            "tests/test_dash.py": {"traffic"},
            "tests/test_other.py": {"stack_records"},
        }
    )
    assert groups["tests/test_privacy.py"] == groups["tests/test_training.py"] == "training_run"
    assert groups["tests/test_dash.py"] == "traffic"
    assert groups["tests/test_other.py"] == "tests/test_other.py"


def test_a_module_using_two_shared_fixtures_joins_their_groups() -> None:
    # test_x links the two fixtures, so test_y (traffic only) must run where training_run runs.
    groups = xdist_groups(
        {
            "tests/test_y.py": {"traffic"},
            "tests/test_x.py": {"traffic", "training_run"},
            "tests/test_z.py": {"training_run"},
        }
    )
    assert set(groups.values()) == {"training_run"}


def test_the_shared_fixtures_exist() -> None:
    """A renamed fixture would silently stop being grouped: each name must be a conftest fixture."""
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    for name in SHARED_ONCE:
        assert f"\ndef {name}(" in conftest, name


def test_collection_marks_every_test_with_its_group() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", "xdist_group", "tests/test_xdist_groups.py", "tests/test_training_pipeline.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    collected = [ln for ln in out.stdout.splitlines() if "::" in ln]
    assert any(ln.startswith("tests/test_training_pipeline.py::") for ln in collected)
    assert any(ln.startswith("tests/test_xdist_groups.py::") for ln in collected)
