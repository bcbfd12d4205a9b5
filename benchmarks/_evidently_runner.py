"""Time evidently's per-column drift on a slice of the drift benchmark's data.

Runs inside ``.venv-evidently`` (evidently 0.7.23 and its own pins; see
``requirements/evidently.in``), called as a subprocess by ``benchmarks/drift.py``:

    .venv-evidently/bin/python benchmarks/_evidently_runner.py DATA.npz OUT.json

``DATA.npz`` holds ``reference`` and ``current`` (rows x k float arrays) and ``names``. For every
column it runs evidently's ``ValueDrift`` with the four methods the benchmark times for us (psi,
ks, jensenshannon, wasserstein) in one ``Report`` and writes the wall time and the values it
reported. Evidently's numbers are not the same quantities as ours (its ks is a p-value, its
wasserstein is normed by the reference's standard deviation, its PSI bins differ), so only the
time is compared.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift

METHODS = ("psi", "ks", "jensenshannon", "wasserstein")


def _values(snapshot: Any) -> list[Any]:
    """Best-effort extraction of the metric values from a snapshot, for the record only."""
    try:
        data = snapshot.dict()
        return [m.get("value") for m in data.get("metrics", [])]
    except Exception as exc:  # evidently's snapshot layout is not our contract
        return [f"unavailable: {exc}"]


def main(argv: list[str]) -> int:
    """Load the slice, run the report once, write timings as JSON."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    data_path, out_path = Path(argv[0]), Path(argv[1])
    with np.load(data_path, allow_pickle=False) as z:
        ref, cur = z["reference"], z["current"]
        names = [str(s) for s in z["names"]]
    ref_df = pd.DataFrame(ref, columns=names)
    cur_df = pd.DataFrame(cur, columns=names)
    definition = DataDefinition(numerical_columns=names)

    t0 = time.perf_counter()
    ref_ds = Dataset.from_pandas(ref_df, data_definition=definition)
    cur_ds = Dataset.from_pandas(cur_df, data_definition=definition)
    t_data = time.perf_counter() - t0

    metrics = [ValueDrift(column=c, method=m) for c in names for m in METHODS]
    t0, cpu0 = time.perf_counter(), time.process_time()
    snapshot = Report(metrics).run(cur_ds, ref_ds)
    t_run = time.perf_counter() - t0
    cpu_run = time.process_time() - cpu0

    out = {
        "evidently_features": len(names),
        "rows_reference": int(ref.shape[0]),
        "rows_current": int(cur.shape[0]),
        "methods": list(METHODS),
        "dataset_seconds": t_data,
        "report_seconds": t_run,
        "seconds": t_data + t_run,
        "report_cpu_seconds": cpu_run,
        "values": _values(snapshot),
    }
    out_path.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
