"""A stack's synth record that is never stale: reused only when its fingerprint still holds.

``fresh_record(stack)`` is the one way a command that judges a record (``sovml check``,
``sovml cost``) obtains it: the record on disk is reused when its fingerprint
(``infra.synth.fingerprint``), recomputed from the files, stack file, program and versions it
lists, is unchanged; otherwise the stack is synthesized again and the result says why. File dates
are never consulted, and a record of an equally named stack from another folder never stands in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config.stackfile import STACKS, repo_relative, stack_file
from infra.synth.fingerprint import stale_reason
from infra.synth.runner import BUILD, PROGRAM, synthesize


@dataclass(frozen=True)
class FreshRecord:
    """A stack's current synth record and how it was obtained."""

    record: dict[str, Any]
    """The synth record (``build/<stack>/resources.json`` as data)."""
    path: Path
    """Where the record is on disk."""
    synthesized: bool
    """True when the stack was synthesized now, False when the record on disk was reused."""
    reason: str
    """Why it was synthesized (what changed), or why reuse was safe."""
    seconds: float
    """Time spent deciding (and synthesizing)."""

    def describe(self) -> str:
        """One line for the terminal: reused or re-synthesized, and why."""
        stack, where = self.record["stack"], repo_relative(self.path)
        if self.synthesized:
            return f"{stack}: synthesized {where} in {self.seconds:.1f}s because {self.reason}"
        return f"{stack}: reused {where}: {self.reason}"


def record_path(stack: str, build_dir: Path = BUILD) -> Path:
    """Where the synth record of ``stack`` is written."""
    return build_dir / stack / "resources.json"


def _read(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The record at ``path`` and, when there is none to reuse, why."""
    if not path.is_file():
        return None, "there was no record"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"the record is unreadable: {exc}"
    if not isinstance(record, dict) or not isinstance(record.get("resources"), list):
        return None, "the record is malformed"
    return record, ""


def fresh_record(
    stack: str,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    program: Path = PROGRAM,
) -> FreshRecord:
    """The stack's synth record: the one on disk when its fingerprint holds, else a new synth.

    Raises:
        infra.synth.runner.SynthError: The stack must be synthesized and cannot be.
    """
    started = time.perf_counter()
    path = record_path(stack, build_dir)
    record, why = _read(path)
    if record is not None:
        why = stale_reason(record, stack_file(stack, stacks_dir), program) or ""
        if not why:
            fp = record["fingerprint"]
            reason = (
                f"fingerprint {fp['digest'][:12]} unchanged ({len(fp['files'])} files, "
                f"the stack file, {len(fp['versions'])} versions, the policy code)"
            )
            return FreshRecord(record, path, False, reason, time.perf_counter() - started)
    result = synthesize(stack, stacks_dir=stacks_dir, build_dir=build_dir, program=program)
    return FreshRecord(result.record, result.path, True, why, time.perf_counter() - started)
