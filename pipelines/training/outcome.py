"""A run's outcome as the counter the training-pipeline SLO reads: ``sovml_pipeline_runs_total``.

The local run (:func:`pipelines.training.local_run.run_local`) adds one to
``{pipeline, outcome="succeeded"|"failed"}`` in a Prometheus textfile (the node exporter's
textfile collector and the pushgateway both accept this format) under
``<output_dir>/metrics/``. Both outcome series are always written, zero included: ``increase``
cannot see a series' first sample, so a counter that appeared with its first failure would hide
that failure from the SLO. A gate rejection is a succeeded run (the pipeline did its job).

On the cluster the pipeline's exit task (``outcome`` in :mod:`pipelines.training.tasks`,
under a ``dsl.ExitHandler``) calls :func:`push_run`: the pushgateway holds one group per pipeline
(``job="training-pipeline"``, ``pipeline``) and replaces a group's values on every push, so the
task reads the group's current counts back, adds this run and pushes both outcome series with
``PUT``. The result is a counter Prometheus sees grow across runs, and ``increase()`` in the SLO
rules stays correct: a pushgateway restart (it keeps no state here) restarts the counts from
this run, which ``increase()`` takes as a counter reset. Two runs ending within the same
read-and-push would count once; runs are a few a day.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipelines import pushgateway

METRIC = "sovml_pipeline_runs_total"
OUTCOMES = ("succeeded", "failed")
FILE_NAME = "sovml_pipeline_runs.prom"
PUSH_JOB = "training-pipeline"
"""The pushgateway ``job`` of the cluster runs' counter (the group is per pipeline)."""
SUCCEEDED_STATES = ("SUCCEEDED", "COMPLETE")
"""``PipelineTaskFinalStatus.state`` of a body that succeeded: the KFP SDK documents
``SUCCEEDED``, the open-source backend reports the ML Metadata state ``COMPLETE``."""
FAILED_STATES = ("FAILED",)
NOT_COUNTED_STATES = ("CANCELLED", "CANCELED")
"""A run an operator cancelled is neither a success nor a failure of the pipeline."""
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


def _check_name(pipeline: str) -> None:
    """A pipeline name that can neither inject labels or lines nor leave its URL segment."""
    if not re.fullmatch(r"[\w.-]+", pipeline):
        raise ValueError(f"pipeline: {pipeline!r}; allowed letters, digits, '_', '.', '-'")


def _add_run(counts: dict[tuple[str, str], int], pipeline: str, succeeded: bool) -> None:
    """One more run of ``pipeline`` in ``counts``, both outcome series present."""
    key = (pipeline, "succeeded" if succeeded else "failed")
    counts[key] = counts.get(key, 0) + 1
    counts.setdefault((pipeline, OUTCOMES[0]), 0)


def record_run(metrics_dir: Path, pipeline: str, succeeded: bool) -> Path:
    """Add one run to the textfile in ``metrics_dir`` (written whole, then renamed, so a
    collector never reads half a file) and return its path."""
    _check_name(pipeline)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    path = metrics_dir / FILE_NAME
    counts = read_counts(path)
    _add_run(counts, pipeline, succeeded)
    partial = path.with_suffix(".prom.tmp")
    partial.write_text(exposition(counts))
    os.replace(partial, path)
    return path


def succeeded_of_state(state: str) -> bool | None:
    """Whether a ``PipelineTaskFinalStatus.state`` is a succeeded run (None: not counted).

    Raises:
        ValueError: A state that is none of the known ones (e.g. ``RUNNING``, which a backend
            bug can report): counting it either way would skew the SLO.
    """
    if state in SUCCEEDED_STATES:
        return True
    if state in FAILED_STATES:
        return False
    if state in NOT_COUNTED_STATES:
        return None
    known = (*SUCCEEDED_STATES, *FAILED_STATES, *NOT_COUNTED_STATES)
    raise ValueError(f"pipeline state: {state!r}; expected one of {', '.join(known)}")


def push_run(gateway: str, pipeline: str, succeeded: bool) -> dict[tuple[str, str], int]:
    """Add one run to ``pipeline``'s counter on the pushgateway (read back, add, ``PUT``) and
    return the counts pushed. Raises ``OSError`` when the gateway cannot be read or written."""
    _check_name(pipeline)
    group = {"job": PUSH_JOB, "pipeline": pipeline}
    counts = {
        (pipeline, labels["outcome"]): int(value)
        for labels, value in pushgateway.read_samples(gateway, METRIC)
        if labels.items() >= group.items() and labels.get("outcome") in OUTCOMES
    }
    _add_run(counts, pipeline, succeeded)
    pushgateway.push(gateway, PUSH_JOB, {"pipeline": pipeline}, exposition(counts))
    return counts
