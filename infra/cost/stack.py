"""Estimate a named stack: its synth record (made fresh when stale), priced and written to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.cost.estimate import CostEstimate, estimate, write_estimate
from infra.cost.price_table import PRICES_DIR, load_prices
from infra.synth.fresh import fresh_record


def load_record(stack: str, stacks_dir: Path, build_dir: Path) -> dict[str, Any]:
    """The stack's synth record, synthesized first unless its fingerprint still holds.

    The gate's own rule (``infra.synth.fresh``): by content, never by file date.

    Raises:
        infra.synth.runner.SynthError: The stack file is missing or invalid.
    """
    return fresh_record(stack, stacks_dir, build_dir).record


def cost_path(stack: str, build_dir: Path) -> Path:
    """Where the estimate of ``stack`` is written: ``build/<stack>/cost.json``."""
    return build_dir / stack / "cost.json"


def estimate_stack(
    stack: str, stacks_dir: Path, build_dir: Path, prices_dir: Path = PRICES_DIR
) -> CostEstimate:
    """Estimate one stack and write ``build/<stack>/cost.json``.

    Raises:
        infra.synth.runner.SynthError: The stack file is missing or invalid.
        CostError: The region has no price table, or the table is malformed.
    """
    record = load_record(stack, stacks_dir, build_dir)
    region = record["config"]["region"]
    est = estimate(record, load_prices(region, prices_dir))
    write_estimate(est, cost_path(stack, build_dir))
    return est
