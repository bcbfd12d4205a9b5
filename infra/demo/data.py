"""Inputs for the demo's drift step: the training distribution and a shifted production window.

    python -m infra.demo.data drift-inputs OUT_DIR
    python -m infra.demo.data tamper LOG OUT

``tamper`` writes a copy of a lifecycle log with entry 1's subject changed and the line otherwise
kept canonical, as a careful forger would; ``sovml audit verify`` must name that entry.

The reference is the pipeline's own generated training data (features only); the current window
is fresh data from the same generator with two features shifted the way a changed customer mix
would shift them (incomes fall 25 %, utilisation rises), so the report has something to find.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipelines.training.data import generate
from pipelines.training.schema import FEATURES


def drift_inputs(out: Path, rows: int = 20_000) -> tuple[Path, Path]:
    """Write ``reference.parquet`` and ``current.parquet`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    reference = generate(rows, seed=42)[list(FEATURES)]
    current = generate(rows // 2, seed=7)[list(FEATURES)].copy()
    numeric = [c for c in current.columns if current[c].dtype.kind == "f"]
    current[numeric[0]] = current[numeric[0]] * 0.75
    current[numeric[1]] = current[numeric[1]] + current[numeric[1]].std() * 0.8
    ref_path, cur_path = out / "reference.parquet", out / "current.parquet"
    reference.to_parquet(ref_path)
    current.to_parquet(cur_path)
    print(f"reference {ref_path} ({len(reference)} rows); current {cur_path} ({len(current)} rows)")
    print(f"shifted features: {numeric[0]} (x0.75), {numeric[1]} (+0.8 sd)")
    return ref_path, cur_path


def tamper(log: Path, out: Path) -> Path:
    """Copy ``log`` to ``out`` with entry 1's subject changed (hash left as it was)."""
    from pipelines.audit.entries import canonical

    lines = log.read_bytes().splitlines()
    if len(lines) < 2:
        raise SystemExit(f"{log}: needs at least 2 entries to tamper with entry 1")
    entry = json.loads(lines[1])
    entry["subject"] = f"{entry['subject']} (forged)"
    lines[1] = canonical(entry)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"\n".join(lines) + b"\n")
    print(f"{out}: entry 1's subject now {entry['subject']!r}")
    return out


USAGE = "usage: python -m infra.demo.data drift-inputs OUT_DIR | tamper LOG OUT"

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "drift-inputs":
        drift_inputs(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "tamper":
        tamper(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(USAGE)
