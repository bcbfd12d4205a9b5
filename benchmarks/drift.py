"""Drift statistics benchmark: kernels.drift against a scipy loop and evidently, in one run.

    python benchmarks/drift.py [--rows N --features D --skip-evidently ...]

Generates a reference and a shifted current window (rows x features, float32, fixed seed; the
features mix normal, log-normal, integer-valued (heavy ties) and bounded columns, some shifted,
some not), then times:

(a) building the reference profile (once; reported on its own, not in the ratios);
(b) ``kernels.drift.drift`` on the window: PSI, KS, JS and W1 for every feature (best and
    median of ``--repeat`` runs after one cold run, which is reported too);
(c) the scipy loop per feature: np.histogram of the window on the profile's edges (the reference
    fractions come from the profile, as ours do), PSI, ``ks_2samp``, ``jensenshannon`` and
    ``wasserstein_distance``; on all features, or on the first ``--scipy-features`` and
    extrapolated linearly (the output says which);
(d) evidently 0.7.23 (``ValueDrift`` with psi, ks, jensenshannon, wasserstein per column) in its
    own virtualenv ``.venv-evidently``, as a subprocess on ``--evidently-features`` features and
    extrapolated linearly (always labelled so); its import time is not counted.

It also measures, in the same run, a memory bound (one torch sum over the window: reading it
once) and a sort bound (numpy's in-place sort of every feature of a feature-major copy of the
window, split over the same threads as ours), and reports our time as multiples of both, plus the
largest relative deviation from scipy on the features scipy computed. Prints a table and writes
JSON to ``build/bench/drift.json``. The machine may be shared: the load average before and after is
recorded with the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics as pystats
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy import stats
from scipy.spatial.distance import jensenshannon

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kernels.drift import (  # noqa: E402 - after the path fix, for `python benchmarks/drift.py`
    PSI_EPS,
    STATISTICS,
    DriftResult,
    ReferenceProfile,
    build_profile,
    drift,
)

EVIDENTLY_PY = ROOT / ".venv-evidently" / "bin" / "python"
EVIDENTLY_RUNNER = ROOT / "benchmarks" / "_evidently_runner.py"
DEFAULT_OUT = ROOT / "build" / "bench" / "drift.json"


def make_data(rows: int, features: int, seed: int, nan_fraction: float) -> tuple[np.ndarray, ...]:
    """Reference and current windows (rows x features, float32, row-major)."""
    rng = np.random.default_rng(seed)

    def shape(x: np.ndarray) -> np.ndarray:
        # Column kinds by index: normal, log-normal, integer-valued (ties), bounded.
        x[:, 1::4] = np.exp(0.5 * x[:, 1::4])
        x[:, 2::4] = np.round(3.0 * x[:, 2::4])
        x[:, 3::4] = np.tanh(x[:, 3::4])
        return x

    ref = shape(rng.standard_normal((rows, features), dtype=np.float32))
    cur = rng.standard_normal((rows, features), dtype=np.float32)
    # Every other feature shifts in location, every third in scale; the rest do not drift.
    cur[:, 0::2] += np.float32(0.1)
    cur[:, 0::3] *= np.float32(1.1)
    cur = shape(cur)
    if nan_fraction > 0:
        for x in (ref, cur):
            x[rng.random(x.shape) < nan_fraction] = np.nan
    return ref, cur


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(best, median) wall seconds over ``repeat`` runs, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), pystats.median(times), out


def scipy_feature(profile: ReferenceProfile, a: np.ndarray, b: np.ndarray, j: int) -> list[float]:
    """The four statistics for one feature with numpy/scipy, on the profile's bin edges."""
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    edges = np.concatenate(([-np.inf], profile.edges[j, 1:-1], [np.inf]))
    p = profile.ref_fractions[j]
    q = np.histogram(b, edges)[0] / b.size
    pc, qc = np.clip(p, PSI_EPS, None), np.clip(q, PSI_EPS, None)
    return [
        float(np.sum((qc - pc) * np.log(qc / pc))),
        float(stats.ks_2samp(a, b).statistic),
        float(jensenshannon(p, q)),
        float(stats.wasserstein_distance(a, b)),
    ]


def sort_bound(cur: np.ndarray, threads: int, repeat: int) -> tuple[float, float]:
    """(threaded, single-thread) seconds to sort every feature of the window in place."""
    major = np.ascontiguousarray(cur.T)
    work = np.empty_like(major)
    rows = np.array_split(np.arange(major.shape[0]), threads)

    def threaded() -> None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda r: work[r[0] : r[-1] + 1].sort(axis=1), rows))

    def single() -> None:
        work.sort(axis=1)

    out = []
    for fn in (threaded, single):
        best = float("inf")
        for _ in range(repeat):
            work[...] = major  # untimed: start from the unsorted data every time
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out.append(best)
    return out[0], out[1]


def run_evidently(
    ref: np.ndarray, cur: np.ndarray, k: int, console: Console, timeout: float, workdir: Path
) -> dict[str, Any]:
    """Time evidently in .venv-evidently on the first ``k`` features; {} with a reason if not."""
    if not EVIDENTLY_PY.exists():
        return {"skipped": f"{EVIDENTLY_PY} not found (create .venv-evidently, see Makefile)"}
    slice_path = workdir / "evidently_slice.npz"
    out_path = workdir / "evidently_result.json"
    names = np.array([f"f{j}" for j in range(k)])
    np.savez(slice_path, reference=ref[:, :k], current=cur[:, :k], names=names)
    console.print(f"evidently: {k} features in .venv-evidently (subprocess) ...")
    try:
        proc = subprocess.run(
            [str(EVIDENTLY_PY), str(EVIDENTLY_RUNNER), str(slice_path), str(out_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {timeout:.0f}s"}
    finally:
        slice_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        return {"skipped": f"runner failed ({proc.returncode}): {proc.stderr.strip()[-400:]}"}
    result = json.loads(out_path.read_text())
    result.pop("values", None)
    return result


def rel_dev(ours: float, ref: float) -> float:
    """|ours - ref| relative to |ref| (absolute when ref is 0)."""
    return abs(ours - ref) / abs(ref) if ref != 0 else abs(ours - ref)


@dataclass
class Ours:
    """Timings of the kernels: the profile build and the drift of the window."""

    profile: ReferenceProfile
    """The reference profile built."""
    profile_s: float
    """Seconds to build it."""
    cold_s: float
    """Seconds of the first drift call in the process."""
    best_s: float
    """Best of the timed runs."""
    median_s: float
    """Median of the timed runs."""
    cpu_s: float
    """CPU seconds per timed run (all threads)."""
    result: DriftResult
    """The statistics of the last run."""


@dataclass
class ScipyLoop:
    """Timings and values of the scipy loop, scaled to every feature when run on a part."""

    seconds: float
    """Wall seconds, scaled to all features."""
    measured_s: float
    """Wall seconds actually measured."""
    cpu_s: float
    """CPU seconds, with the same scaling as ``seconds``."""
    features: int
    """Features the loop ran on."""
    label: str
    """``full`` or how it was extrapolated."""
    values: list[list[float]]
    """Its four statistics per feature it ran on."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nan-fraction", type=float, default=0.0, help="missing values to inject")
    ap.add_argument("--repeat", type=int, default=10, help="timed runs of ours after a cold run")
    ap.add_argument("--threads", type=int, default=None, help="our threads (default: all CPUs)")
    ap.add_argument(
        "--scipy-features", type=int, default=0, help="features for the scipy loop (0: all)"
    )
    ap.add_argument("--evidently-features", type=int, default=4)
    ap.add_argument("--evidently-timeout", type=float, default=900.0)
    ap.add_argument("--skip-evidently", action="store_true")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return ap.parse_args(argv)


def time_ours(
    ref: np.ndarray, cur: np.ndarray, args: argparse.Namespace, threads: int, console: Console
) -> Ours:
    """Build the profile once, then time ``drift`` cold and over ``--repeat`` runs."""
    t0 = time.perf_counter()
    profile = build_profile(ref, bins=args.bins, threads=threads)
    t_profile = time.perf_counter() - t0
    console.print(f"profile built in {t_profile:.2f}s")

    t0 = time.perf_counter()
    drift(profile, cur, threads=threads)
    t_cold = time.perf_counter() - t0
    cpu0 = time.process_time()
    t_ours, t_ours_med, res = best_of(lambda: drift(profile, cur, threads=threads), args.repeat)
    # CPU seconds per run: the work done, which other processes on a shared machine inflate less
    # than wall time.
    cpu_ours = (time.process_time() - cpu0) / args.repeat
    console.print(
        f"ours: best {t_ours:.3f}s, median {t_ours_med:.3f}s, cold {t_cold:.3f}s, "
        f"{cpu_ours:.3f} CPU s per run"
    )
    return Ours(profile, t_profile, t_cold, t_ours, t_ours_med, cpu_ours, res)


def time_bounds(cur: np.ndarray, threads: int, console: Console) -> tuple[float, float, float]:
    """(memory bound, sort bound, single-thread sort bound) seconds."""
    window = torch.from_numpy(cur)
    t_mem, _, _ = best_of(lambda: float(window.sum()), 5)
    t_sort, t_sort_1 = sort_bound(cur, threads, 3)
    console.print(f"bounds: read {t_mem * 1e3:.1f} ms, sort {t_sort:.3f}s ({t_sort_1:.3f}s 1 thr)")
    return t_mem, t_sort, t_sort_1


def time_scipy(
    profile: ReferenceProfile, ref: np.ndarray, cur: np.ndarray, wanted: int, console: Console
) -> ScipyLoop:
    """The scipy loop on ``wanted`` features (0: all), extrapolated to all of them."""
    d = cur.shape[1]
    k_scipy = d if wanted <= 0 else min(wanted, d)
    console.print(f"scipy loop on {k_scipy} of {d} features ...")
    scipy_vals = []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for j in range(k_scipy):
        scipy_vals.append(scipy_feature(profile, ref[:, j], cur[:, j], j))
    t_scipy_part = time.perf_counter() - t0
    cpu_scipy = (time.process_time() - cpu0) * d / k_scipy
    t_scipy = t_scipy_part * d / k_scipy
    scipy_label = "full" if k_scipy == d else f"extrapolated from {k_scipy} of {d} features"
    return ScipyLoop(t_scipy, t_scipy_part, cpu_scipy, k_scipy, scipy_label, scipy_vals)


def deviations(res: DriftResult, scipy_vals: list[list[float]]) -> tuple[dict[str, float], int]:
    """Largest relative deviation from scipy per statistic, and features whose KS is bit-equal."""
    devs = {s: 0.0 for s in STATISTICS}
    ks_exact = 0
    for j, vals in enumerate(scipy_vals):
        for s, v in zip(STATISTICS, vals, strict=True):
            devs[s] = max(devs[s], rel_dev(float(getattr(res, s)[j]), v))
        ks_exact += int(float(res.ks[j]) == vals[1])
    return devs, ks_exact


def time_evidently(
    args: argparse.Namespace, ref: np.ndarray, cur: np.ndarray, console: Console
) -> tuple[dict[str, Any], float | None]:
    """Evidently's result record and its time extrapolated to every feature (None if skipped)."""
    d = cur.shape[1]
    ev: dict[str, Any] = {"skipped": "--skip-evidently"}
    if not args.skip_evidently:
        k_ev = max(1, min(args.evidently_features, d))
        ev = run_evidently(ref, cur, k_ev, console, args.evidently_timeout, args.out.parent)
    t_ev = None
    if "seconds" in ev:
        t_ev = ev["seconds"] * d / ev["evidently_features"]
        ev["label"] = f"extrapolated from {ev['evidently_features']} of {d} features"
    return ev, t_ev


def timing_table(
    ours: Ours, loop: ScipyLoop, ev: dict[str, Any], t_ev: float | None, shape: tuple[int, ...]
) -> Table:
    """Seconds, throughput and ratios of every method on the ``rows x features x threads`` run."""
    rows, d, threads, repeat = shape
    values = rows * d
    table = Table(
        title=f"drift statistics (PSI, KS, JS, W1), {rows:,} x {d} window, {threads} threads",
        title_justify="left",
    )
    for col in ("method", "seconds", "values/s", "vs scipy", "vs evidently", "how"):
        table.add_column(col, justify="left" if col in ("method", "how") else "right")

    def row(name: str, t: float | None, how: str) -> None:
        if t is None:
            table.add_row(name, "-", "-", "-", "-", how)
            return
        vs_ev = f"{t_ev / t:.1f}x" if t_ev else "-"
        table.add_row(name, f"{t:.3f}", f"{values / t:.3g}", f"{loop.seconds / t:.1f}x", vs_ev, how)

    row("kernels.drift", ours.best_s, f"best of {repeat} (median {ours.median_s:.3f}s)")
    row("kernels.drift, cold", ours.cold_s, "first call in the process")
    row("scipy loop", loop.seconds, loop.label)
    row("evidently 0.7.23", t_ev, ev.get("label", ev.get("skipped", "")))
    table.add_row("profile build", f"{ours.profile_s:.3f}", "-", "-", "-", "once per reference")
    return table


def bounds_table(
    ours: Ours,
    loop: ScipyLoop,
    bounds: tuple[float, float, float],
    exactness: tuple[dict[str, float], int],
    threads: int,
    loads: tuple[float, float],
) -> Table:
    """How far ours is from reading and sorting the window, and from scipy's values."""
    t_mem, t_sort, t_sort_1 = bounds
    devs, ks_exact = exactness
    table = Table(title="bounds and exactness", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("memory bound: read the window once (torch sum)", f"{t_mem * 1e3:.1f} ms")
    table.add_row("  ours / memory bound", f"{ours.best_s / t_mem:.1f}x")
    table.add_row(f"sort bound: np.sort of every feature ({threads} threads)", f"{t_sort:.3f} s")
    table.add_row(
        "  sort bound / ours (fraction of ours that is the sort)", f"{t_sort / ours.best_s:.2f}"
    )
    table.add_row("sort bound, 1 thread", f"{t_sort_1:.3f} s")
    for s in STATISTICS:
        table.add_row(f"max relative deviation from scipy: {s}", f"{devs[s]:.2e}")
    table.add_row("KS equal to scipy bit for bit", f"{ks_exact} of {loop.features} features")
    table.add_row("ours: CPU seconds per run (all threads)", f"{ours.cpu_s:.3f} s")
    table.add_row("scipy loop: CPU seconds (same scaling as its wall time)", f"{loop.cpu_s:.1f} s")
    table.add_row("load average before / after", f"{loads[0]:.2f} / {loads[1]:.2f}")
    return table


def json_report(
    args: argparse.Namespace,
    threads: int,
    ours: Ours,
    loop: ScipyLoop,
    evidently: tuple[dict[str, Any], float | None],
    bounds: tuple[float, float, float],
    exactness: tuple[dict[str, float], int],
    loads: tuple[float, float],
) -> dict[str, Any]:
    """Everything measured, as written to ``--out``."""
    rows, d = args.rows, args.features
    values = rows * d
    ev, t_ev = evidently
    t_mem, t_sort, t_sort_1 = bounds
    devs, ks_exact = exactness
    return {
        "rows": rows,
        "features": d,
        "bins": args.bins,
        "seed": args.seed,
        "nan_fraction": args.nan_fraction,
        "threads": threads,
        "values": values,
        "profile_build_s": ours.profile_s,
        "ours_s": ours.best_s,
        "ours_median_s": ours.median_s,
        "ours_cold_s": ours.cold_s,
        "ours_cpu_s_per_run": ours.cpu_s,
        "ours_values_per_s": values / ours.best_s,
        "scipy_s": loop.seconds,
        "scipy_measured_s": loop.measured_s,
        "scipy_cpu_s": loop.cpu_s,
        "scipy_features": loop.features,
        "scipy_label": loop.label,
        "scipy_values_per_s": values / loop.seconds,
        "ratio_vs_scipy": loop.seconds / ours.best_s,
        "evidently": ev,
        "evidently_s": t_ev,
        "evidently_values_per_s": values / t_ev if t_ev else None,
        "ratio_vs_evidently": t_ev / ours.best_s if t_ev else None,
        "memory_bound_s": t_mem,
        "ours_over_memory_bound": ours.best_s / t_mem,
        "memory_bound_fraction": t_mem / ours.best_s,
        "sort_bound_s": t_sort,
        "sort_bound_1thread_s": t_sort_1,
        "sort_bound_fraction": t_sort / ours.best_s,
        "max_rel_deviation": devs,
        "ks_bitwise_equal": f"{ks_exact}/{loop.features}",
        "load_average_before_after": list(loads),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write the JSON."""
    args = parse_args(argv)
    console = Console(width=120) if not sys.stdout.isatty() else Console()
    rows, d = args.rows, args.features
    threads = args.threads or len(os.sched_getaffinity(0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()

    console.print(f"data: {rows:,} x {d} float32 reference and current (seed {args.seed}) ...")
    ref, cur = make_data(rows, d, args.seed, args.nan_fraction)
    ours = time_ours(ref, cur, args, threads, console)
    bounds = time_bounds(cur, threads, console)
    loop = time_scipy(ours.profile, ref, cur, args.scipy_features, console)
    exactness = deviations(ours.result, loop.values)
    ev, t_ev = time_evidently(args, ref, cur, console)

    loads = (load_before[0], os.getloadavg()[0])
    console.print(timing_table(ours, loop, ev, t_ev, (rows, d, threads, args.repeat)))
    console.print(bounds_table(ours, loop, bounds, exactness, threads, loads))
    report = json_report(args, threads, ours, loop, (ev, t_ev), bounds, exactness, loads)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
