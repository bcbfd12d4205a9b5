"""The training run's outcome counter (``pipelines.training.outcome``), read back by the real
``promtool check metrics`` (the format the node exporter's textfile collector and the pushgateway
take)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipelines.training.outcome import FILE_NAME, METRIC, read_counts, record_run
from tests.system import require_binary


def test_runs_are_counted_per_outcome_with_both_series_always_present(tmp_path: Path) -> None:
    path = record_run(tmp_path, "training", succeeded=True)
    assert path == tmp_path / FILE_NAME
    # The failed series exists (at 0) from the first run, so increase() sees the first failure.
    assert read_counts(path) == {("training", "succeeded"): 1, ("training", "failed"): 0}
    record_run(tmp_path, "training", succeeded=False)
    record_run(tmp_path, "training", succeeded=True)
    record_run(tmp_path, "other", succeeded=False)
    assert read_counts(path) == {
        ("training", "succeeded"): 2,
        ("training", "failed"): 1,
        ("other", "succeeded"): 0,
        ("other", "failed"): 1,
    }
    assert not list(tmp_path.glob("*.tmp")), "written whole, then renamed"


@pytest.mark.parametrize("name", ['x",outcome="failed', "a b", "", "x\ny"])
def test_a_pipeline_name_cannot_inject_labels_or_lines(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="allowed letters, digits"):
        record_run(tmp_path, name, succeeded=True)
    assert not (tmp_path / FILE_NAME).exists()


def test_the_textfile_is_valid_exposition_for_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = record_run(tmp_path, "training", succeeded=False)
    text = path.read_text()
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"# TYPE {METRIC} counter" in text
