"""Estimate a named stack: its synth record (made fresh when stale), priced and written to disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.config.stackfile import stack_file
from infra.cost.estimate import CostEstimate, estimate, write_estimate
from infra.cost.price_table import PRICES_DIR, load_prices
from infra.gate.run import is_stale
from infra.synth import runner as synthmod


def load_record(stack: str, stacks_dir: Path, build_dir: Path) -> dict[str, Any]:
    """The stack's synth record, synthesized first when missing or stale.

    Raises:
        synthmod.SynthError: The stack file is missing or invalid.
    """
    path = build_dir / stack / "resources.json"
    # The gate's own staleness rule: the stack file or a program source is newer than the record.
    if is_stale(path, stack_file(stack, stacks_dir)):
        return synthmod.synthesize(stack, stacks_dir=stacks_dir, build_dir=build_dir).record
    return json.loads(path.read_text())


def cost_path(stack: str, build_dir: Path) -> Path:
    """Where the estimate of ``stack`` is written: ``build/<stack>/cost.json``."""
    return build_dir / stack / "cost.json"


def estimate_stack(
    stack: str, stacks_dir: Path, build_dir: Path, prices_dir: Path = PRICES_DIR
) -> CostEstimate:
    """Estimate one stack and write ``build/<stack>/cost.json``.

    Raises:
        synthmod.SynthError: The stack file is missing or invalid.
        CostError: The region has no price table, or the table is malformed.
    """
    record = load_record(stack, stacks_dir, build_dir)
    region = record["config"]["region"]
    est = estimate(record, load_prices(region, prices_dir))
    write_estimate(est, cost_path(stack, build_dir))
    return est
