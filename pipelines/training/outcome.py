"""A run's outcome as the counter the training-pipeline SLO reads: ``sovml_pipeline_runs_total``.

The local run (:func:`pipelines.training.local_run.run_local`) adds one to
``{pipeline, outcome="succeeded"|"failed"}`` in a Prometheus textfile (the node exporter's
textfile collector and the pushgateway both accept this format) under
``<output_dir>/metrics/``. Both outcome series are always written, zero included: ``increase``
cannot see a series' first sample, so a counter that appeared with its first failure would hide
that failure from the SLO. A gate rejection is a succeeded run (the pipeline did its job).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

METRIC = "sovml_pipeline_runs_total"
OUTCOMES = ("succeeded", "failed")
FILE_NAME = "sovml_pipeline_runs.prom"
_LINE = re.compile(rf'{METRIC}\{{pipeline="([\w.-]+)",outcome="(\w+)"\}} ([0-9]+)')


def read_counts(path: Path) -> dict[tuple[str, str], int]:
    """The counts in an existing textfile ((pipeline, outcome) -> runs); none if absent."""
    if not path.is_file():
        return {}
    return {
        (m.group(1), m.group(2)): int(m.group(3))
        for m in map(_LINE.fullmatch, path.read_text().splitlines())
        if m
    }


def exposition(counts: dict[tuple[str, str], int]) -> str:
    """Prometheus text format of the counter, both outcomes of every pipeline."""
    lines = [
        f"# HELP {METRIC} Training pipeline runs by outcome.",
        f"# TYPE {METRIC} counter",
    ]
    for pipeline in sorted({p for p, _ in counts}):
        for outcome in OUTCOMES:
            value = counts.get((pipeline, outcome), 0)
            lines.append(f'{METRIC}{{pipeline="{pipeline}",outcome="{outcome}"}} {value}')
    return "\n".join(lines) + "\n"


def record_run(metrics_dir: Path, pipeline: str, succeeded: bool) -> Path:
    """Add one run to the textfile in ``metrics_dir`` (written whole, then renamed, so a
    collector never reads half a file) and return its path."""
    if not re.fullmatch(r"[\w.-]+", pipeline):
        raise ValueError(f"pipeline: {pipeline!r}; allowed letters, digits, '_', '.', '-'")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    path = metrics_dir / FILE_NAME
    counts = read_counts(path)
    key = (pipeline, "succeeded" if succeeded else "failed")
    counts[key] = counts.get(key, 0) + 1
    counts.setdefault((pipeline, OUTCOMES[0]), 0)
    partial = path.with_suffix(".prom.tmp")
    partial.write_text(exposition(counts))
    os.replace(partial, path)
    return path
