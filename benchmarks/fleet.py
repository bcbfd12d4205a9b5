"""The fleet gate at scale: N generated SMB tenants plus the platform stacks, against today's loop.

Generates ``--tenants`` SMB tenant stacks (default 100) into a scratch stacks folder with the
``sovml tenant new`` logic (``infra.tenants.create.create_tenant``, called, not a process per
tenant), beside copies of the repository's platform stacks, then times, wall clock, in this
process (the fleet's worker processes and checkov's are started inside the timings; the
interpreter's own start-up, about a second, is not):

* ``fleet cold``: ``infra.gate.fleet.run_fleet`` over every stack, nothing built yet.
* ``fleet one tenant changed``: one tenant's budget edited in its stack file; the rest skipped.
* ``fleet shared input changed``: every record's fingerprint made to list a changed component
  file (``components/network.py``'s hash replaced in each ``resources.json`` and in the copy of
  the fingerprint its ``gate.json`` keeps), exactly what ``stale_reason`` sees after an edit of
  that file, without editing the repository; every stack is synthesized and checked again.
* ``loop cold`` / ``loop records reused`` (the baseline, today's path): ``infra.gate.run.run_gate``
  stack after stack (checkov started per stack and framework), measured on a sample of
  ``--sample`` stacks (the platform stacks and tenants) and extrapolated to the fleet: each
  platform stack at its own time, each tenant at the sampled tenants' mean. The loop has no
  skip: after a tenant change it judges every stack again (``loop records reused``), after a
  shared change it is ``loop cold`` again.

Load average is recorded before and after: the machine may be shared, and a busy one slows both
sides. Writes ``build/bench/fleet.json``.

    .venv/bin/python benchmarks/fleet.py                 # 100 tenants
    .venv/bin/python benchmarks/fleet.py --tenants 500 --sample 10 --no-shared
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make infra/ importable
    sys.path.insert(0, str(ROOT))

from infra.config.stackfile import STACKS, list_stacks  # noqa: E402
from infra.gate import fleet, run  # noqa: E402
from infra.gate.findings import load_suppressions  # noqa: E402
from infra.tenants.create import TenantRequest, create_tenant  # noqa: E402

OUT = ROOT / "build" / "bench" / "fleet.json"
SHARED = "components/network.py"
"""The shared input whose change is simulated (every stack's record lists it)."""


def generate(stacks: Path, tenants: int) -> list[str]:
    """The platform stacks copied and ``tenants`` SMB tenants created; every stack name."""
    stacks.mkdir(parents=True)
    for name in list_stacks(STACKS):
        shutil.copy(STACKS / f"Pulumi.{name}.yaml", stacks / f"Pulumi.{name}.yaml")
    for i in range(tenants):
        request = TenantRequest(
            name=f"tenant-{i:04d}",
            emails=(f"ops-{i}@example.com",),
            alert_webhook=f"https://hooks.example.com/tenant-{i:04d}",
            oidc_issuer="https://login.example.ae/realms/ml",
            oidc_jwks_uri="https://login.example.ae/realms/ml/certs",
            account_id="111122223333",
        )
        create_tenant(request, stacks)
    return list_stacks(stacks)


def change_tenant(stacks: Path, name: str) -> None:
    """A real edit of one tenant: its monthly budget."""
    path = stacks / f"Pulumi.{name}.yaml"
    text = path.read_text()
    lines = [
        "  sovereign-ml:monthlyBudgetUsd: 4321" if "monthlyBudgetUsd:" in line else line
        for line in text.splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


def change_shared_input(build: Path, names: list[str]) -> int:
    """Make every record list ``SHARED`` with another hash, as after an edit of that file: in the
    record and in the copy of its fingerprint ``gate.json`` keeps (the skip decision reads that)."""
    changed = 0
    for name in names:
        for path, key in (
            (build / name / "resources.json", "fingerprint"),
            (build / name / fleet.GATE_FILE, "record"),
        ):
            doc = json.loads(path.read_text())
            files = doc[key]["files"]
            if SHARED in files:
                files[SHARED] = "0" * 64
                changed += key == "fingerprint"
            path.write_text(json.dumps(doc, indent=2) + "\n")
    return changed


def timed_fleet(names: list[str], stacks: Path, build: Path, jobs: int) -> dict[str, Any]:
    """One ``run_fleet`` over ``names``: wall time, phases, and what it checked or skipped."""
    started = time.perf_counter()
    result = fleet.run_fleet(
        names, stacks_dir=stacks, build_dir=build, suppressions=load_suppressions(), jobs=jobs
    )
    seconds = time.perf_counter() - started
    statuses = [o.status for o in result.outcomes]
    return {
        "seconds": round(seconds, 2),
        "per_stack": round(seconds / len(names), 3),
        "phases": {k: round(v, 2) for k, v in result.seconds.items()},
        "checked": statuses.count(fleet.CHECKED),
        "skipped": statuses.count(fleet.SKIPPED),
        "errors": statuses.count(fleet.ERROR),
        "failed": sum(1 for o in result.outcomes if o.report is not None and not o.report.ok),
    }


def extrapolate(times: dict[str, float], names: list[str]) -> tuple[float, float]:
    """The loop's total over ``names`` from the sampled ``times``, and the tenants' mean: a
    sampled stack counts its own time, any other the sampled tenants' mean (all samples' mean
    when no tenant was sampled)."""
    sampled = [t for s, t in times.items() if s.startswith("tenant-")] or list(times.values())
    tenant_mean = sum(sampled) / len(sampled)
    return sum(times.get(s, tenant_mean) for s in names), tenant_mean


def timed_loop(sample: list[str], stacks: Path, build: Path, names: list[str]) -> dict[str, Any]:
    """Today's loop (``run_gate`` per stack) over ``sample``, extrapolated to ``names``: each
    platform stack at its own time, each tenant at the sampled tenants' mean (one mean over both
    kinds would let the 3 platform stacks set the time of hundreds of tenants)."""
    sup = load_suppressions()
    times: dict[str, float] = {}
    for name in sample:
        started = time.perf_counter()
        run.run_gate(name, stacks_dir=stacks, build_dir=build, suppressions=sup)
        times[name] = time.perf_counter() - started
    total, tenant_mean = extrapolate(times, names)
    return {
        "sample": len(sample),
        "per_stack": round(total / len(names), 3),
        "tenant_mean": round(tenant_mean, 3),
        "seconds": {s: round(t, 2) for s, t in times.items()},
        "min": round(min(times.values()), 2),
        "max": round(max(times.values()), 2),
    }


def main() -> None:
    """Generate the fleet, time every scenario, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--sample", type=int, default=10, help="stacks timed through the loop")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--no-shared", action="store_true", help="skip the shared-input scenario (as long as cold)"
    )
    args = parser.parse_args()
    if not 1 <= args.tenants <= 5000 or not 1 <= args.sample <= 100:
        parser.error("--tenants 1..5000, --sample 1..100")
    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="sovml-fleet-bench-"))
    try:
        stacks, build, loop_build = scratch / "stacks", scratch / "build", scratch / "loop"
        names = generate(stacks, args.tenants)
        n = len(names)
        tenants = [s for s in names if s.startswith("tenant-")]
        platform_stacks = [s for s in names if s not in tenants]
        sample = platform_stacks + tenants[: max(0, args.sample - len(platform_stacks))]

        print(f"{n} stacks ({len(platform_stacks)} platform, {len(tenants)} tenants)", flush=True)
        # The baseline first: it is the shorter part, and a long fleet run cut short still
        # leaves a comparison.
        loop_cold = timed_loop(sample, stacks, loop_build, names)
        print(f"loop cold (sample): {loop_cold}", flush=True)
        loop_warm = timed_loop(sample, stacks, loop_build, names)
        print(f"loop records reused (sample): {loop_warm}", flush=True)

        cold = timed_fleet(names, stacks, build, args.jobs)
        print(f"fleet cold: {cold}", flush=True)
        change_tenant(stacks, tenants[len(tenants) // 2])
        one = timed_fleet(names, stacks, build, args.jobs)
        print(f"fleet one tenant changed: {one}", flush=True)
        shared: dict[str, Any] | None = None
        if not args.no_shared:
            change_shared_input(build, names)
            shared = timed_fleet(names, stacks, build, args.jobs)
            print(f"fleet shared input changed: {shared}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def row(name: str, fleet_run: dict[str, Any], loop: dict[str, Any]) -> dict[str, Any]:
        loop_total = loop["per_stack"] * n
        return {
            "scenario": name,
            "fleet_seconds": fleet_run["seconds"],
            "fleet_per_stack": fleet_run["per_stack"],
            "loop_seconds_extrapolated": round(loop_total, 1),
            "loop_per_stack": loop["per_stack"],
            "speedup": round(loop_total / fleet_run["seconds"], 1),
        }

    rows = [
        row("cold full check", cold, loop_cold),
        row("one tenant changed", one, loop_warm),
        *([row("shared input changed", shared, loop_cold)] if shared else []),
    ]
    doc = {
        "stacks": n,
        "tenants": len(tenants),
        "jobs": args.jobs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "fleet": {"cold": cold, "one_tenant_changed": one, "shared_input_changed": shared},
        "loop": {"cold": loop_cold, "records_reused": loop_warm, "sample_stacks": sample},
        "rows": rows,
        "targets": {"cold_per_stack_max": 1.2, "one_tenant_changed_max_seconds": 15},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\n{'scenario':<22} {'fleet s':>9} {'per stack':>9} {'loop s (extrap.)':>17} "
          f"{'per stack':>9} {'speedup':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['scenario']:<22} {r['fleet_seconds']:>9.1f} {r['fleet_per_stack']:>9.3f} "
              f"{r['loop_seconds_extrapolated']:>17.1f} {r['loop_per_stack']:>9.3f} "
              f"{r['speedup']:>7.1f}x")  # fmt: skip
    print(f"load average before {doc['load_average_before']}, after {doc['load_average_after']}")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
