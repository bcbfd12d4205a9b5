"""What every step shares: the failure marker lines, the step error and JSON files.

A failing step prints one ``SOVML-PIPELINE-ERROR: <step>: <reason>`` line per problem before
raising, so a runner can show the reason without the traceback (:func:`reported`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.training.validation import ERROR_MARKER, ValidationError


class StepError(RuntimeError):
    """A step failed for a reason a person can act on (message starts with the step name)."""


@contextlib.contextmanager
def reported(step: str) -> Iterator[None]:
    """Print the marker line(s) for any failure inside, then re-raise.

    The marker goes to stdout, which the KFP launcher streams into the task log (``kfp.local``
    and the cluster UI alike); the runner shows those lines instead of a traceback.
    """
    try:
        yield
    except ValidationError as exc:
        for problem in exc.problems:
            print(f"{ERROR_MARKER}{problem}", flush=True)
        raise
    except Exception as exc:
        text = str(exc) if str(exc).startswith(f"{step}:") else f"{step}: {exc}"
        for line in text.splitlines() or [f"{step}: {type(exc).__name__}"]:
            print(f"{ERROR_MARKER}{line}", flush=True)
        raise


def write_json(path: str | Path, body: dict[str, Any]) -> None:
    """Write ``body`` as indented, key-sorted JSON (parents created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``."""
    return json.loads(Path(path).read_text())
