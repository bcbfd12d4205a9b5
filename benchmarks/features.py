"""Online feature lookup latency: Feast's SQLite and Redis online stores vs the offline Parquet.

Builds a local feature store in a scratch folder (the synthetic table, 20,000 customers by
default: apply, the service of model version 1, materialize), then times single-entity lookups of
random known customer ids (seeded), one call per lookup, wall clock:

* ``feast online``: :func:`pipelines.features.online_features` (Feast ``get_online_features`` on
  the model's feature service, None check, the model's feature order): the serving path.
* ``feast raw``: ``FeatureStore.get_online_features(...).to_dict()`` alone.
* ``feast online redis``: the serving path on the production online store: Feast's Redis store
  (``feature_store.prod.yaml``'s block) against a real, TLS-only ``redis-server`` with AUTH on
  loopback (Debian's package; the row is left out when it is not installed).
* ``parquet per lookup`` (the baseline): the same row read from the offline source Parquet with
  pyarrow (``pq.read_table(filters=[customer_id == id])``), as a service without an online store
  would.
* ``pandas in memory`` (a floor, for scale): the whole table held in a pandas frame indexed by id.

Every lookup's values are checked against the table before anything is reported.

    .venv/bin/python benchmarks/features.py              # writes build/bench/features.json
    .venv/bin/python benchmarks/features.py --lookups 200 --rows 5000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make pipelines/ importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pipelines import features as fs  # noqa: E402
from pipelines.training import data, schema  # noqa: E402

WARMUP = 20

Lookup = Callable[[int], dict[str, float]]
"""One way of reading a customer's features: entity id -> feature values."""


def latencies(lookup: Lookup, ids: list[int]) -> list[float]:
    """Seconds of each ``lookup(id)``, after a short warm-up (caches, first-call imports)."""
    for entity_id in ids[:WARMUP]:
        lookup(entity_id)
    out = []
    for entity_id in ids:
        started = time.perf_counter()
        lookup(entity_id)
        out.append(time.perf_counter() - started)
    return out


def summary(seconds: list[float]) -> dict[str, Any]:
    """p50/p99/mean in milliseconds."""
    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "lookups": len(seconds),
    }


def version(package: str) -> str:
    """Installed version of ``package``, ``?`` when absent."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def build(store: Any, table: Any) -> tuple[Any, str, float]:
    """Apply ``table``, register model version 1's service, materialize.

    Returns:
        What apply registered, the service name, and the seconds materialize took.
    """
    applied = fs.apply(store, table)
    service = fs.register_feature_service(store, fs.DEFAULT_MODEL, 1, list(schema.FEATURES))
    started = time.perf_counter()
    fs.materialize(store)
    return applied, service, time.perf_counter() - started


def redis_store(work: Path, table: Any, server: Any) -> Any:
    """A second store over ``table`` whose online store is the prod config's Redis block."""
    from tests.redis_server import write_store_config

    folder = work / "redis_store"
    folder.mkdir()
    store = fs.open_store(write_store_config(folder, server), create=True)
    build(store, table)
    return store


def local_methods(store: Any, request: Any, source: str, frame: Any) -> dict[str, Lookup]:
    """The lookups on the local store, its offline source and the in-memory frame."""
    import pyarrow.parquet as pq

    def feast_online(entity_id: int) -> dict[str, float]:
        return fs.online_features(store, entity_id, request)

    def feast_raw(entity_id: int) -> dict[str, float]:
        response = store.get_online_features(
            features=request.service, entity_rows=[{schema.ENTITY: entity_id}]
        ).to_dict()
        return {f: response[f][0] for f in request.features}

    def parquet(entity_id: int) -> dict[str, float]:
        rows = pq.read_table(
            source, columns=list(schema.FEATURES), filters=[(schema.ENTITY, "==", entity_id)]
        )
        return {f: rows.column(f)[0].as_py() for f in schema.FEATURES}

    def in_memory(entity_id: int) -> dict[str, float]:
        return frame.loc[entity_id].to_dict()

    return {
        "feast online": feast_online,
        "feast raw": feast_raw,
        "parquet per lookup": parquet,
        "pandas in memory": in_memory,
    }


def wrong_answer(methods: dict[str, Lookup], ids: list[int], frame: Any) -> str | None:
    """The first lookup that does not return the table's row, as an error line; None if none."""
    for name, lookup in methods.items():
        for entity_id in ids:
            expected = {f: float(frame.at[entity_id, f]) for f in schema.FEATURES}
            got = lookup(entity_id)
            if {f: float(got[f]) for f in schema.FEATURES} != expected:
                return f"error: {name} returned {got} for {entity_id}"
    return None


def report(
    args: argparse.Namespace, results: dict[str, Any], materialize_s: float
) -> dict[str, Any]:
    """The JSON report: ratios against the parquet baseline (added to ``results``) and context."""
    baseline = results["parquet per lookup"]
    for row in results.values():
        row["p50_vs_parquet"] = round(baseline["p50_ms"] / row["p50_ms"], 2)
        row["p99_vs_parquet"] = round(baseline["p99_ms"] / row["p99_ms"], 2)
    return {
        "benchmark": "online feature lookup, one customer per call",
        "rows": args.rows,
        "features": len(schema.FEATURES),
        "feature_views": 3,
        "seed": args.seed,
        "materialize_seconds": round(materialize_s, 2),
        "unit": "milliseconds per lookup, wall clock; vs_parquet = baseline / method (x faster)",
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "feast": version("feast"),
            "pyarrow": version("pyarrow"),
            "pandas": version("pandas"),
            "redis-py": version("redis"),
        },
        "results": results,
    }


def print_table(args: argparse.Namespace, results: dict[str, Any], materialize_s: float) -> None:
    """The human summary of :func:`report`'s results."""
    print(f"\n{args.lookups} single-customer lookups, {args.rows} customers, 16 features:")
    print(f"  {'method':<22} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>7} {'p99 x':>7}")
    for name, row in results.items():
        print(
            f"  {name:<22} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} "
            f"{row['p50_vs_parquet']:>7.2f} {row['p99_vs_parquet']:>7.2f}"
        )
    print("  (x = parquet-per-lookup latency / method latency; > 1 is faster than the baseline)")
    print(f"materialize of {args.rows} rows x 3 views: {materialize_s:.1f} s")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="customers in the store")
    parser.add_argument("--lookups", type=int, default=1_000, help="timed lookups per method")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data and the ids")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "features.json")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="sovml-bench-features-"))
    redis_server = None
    try:
        table = data.generate(args.rows, args.seed)
        print(f"building a store with {args.rows} customers in {work} ...", flush=True)
        store = fs.open_store(work, create=True)
        applied, service, materialize_s = build(store, table)
        request = fs.resolve_request(store, feature_service=service)
        frame = table.set_index(schema.ENTITY)[list(schema.FEATURES)]
        rng = np.random.default_rng(args.seed)
        ids = [int(i) for i in rng.choice(table[schema.ENTITY].to_numpy(), args.lookups)]
        methods = local_methods(store, request, applied.source, frame)
        if shutil.which("redis-server"):
            from tests.redis_server import start_redis

            print("building the same store on a TLS redis-server ...", flush=True)
            (work / "redis").mkdir()
            redis_server = start_redis(work / "redis")
            on_redis = redis_store(work, table, redis_server)
            redis_request = fs.resolve_request(on_redis, feature_service=service)
            methods["feast online redis"] = lambda i: fs.online_features(on_redis, i, redis_request)
        else:
            print("redis-server not installed (`make system-packages`): no Redis row", flush=True)
        # Correctness first: every method returns the table's row for every id timed.
        wrong = wrong_answer(methods, ids, frame)
        if wrong is not None:
            print(wrong, file=sys.stderr)
            return 1
        results = {}
        for name, lookup in methods.items():
            print(f"{name}: {len(ids)} lookups ...", flush=True)
            results[name] = summary(latencies(lookup, ids))
    finally:
        if redis_server is not None:
            from tests.redis_server import stop_redis

            stop_redis(redis_server)
        shutil.rmtree(work, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report(args, results, materialize_s), indent=2) + "\n")
    print_table(args, results, materialize_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
