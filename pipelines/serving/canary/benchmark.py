"""``sovml bench abtest``: false and missed rollbacks of the canary, measured on the real Triton.

Two experiments on the demo variants (:mod:`pipelines.serving.canary.demo`), each run a full
``sovml abtest`` procedure (:func:`pipelines.serving.canary.run.run_abtest`, default criteria):

* **A/A**: the same model as baseline and candidate (the trained MLP under two names): every
  rollback is a false one; the stated bound is P(roll back | equal) <= 5 %.
* **A/B**: a candidate ``delay_ms`` (30) slower (the trained MLP sleeping per execution): every
  run that does not end rolled back is a missed rollback.

Both run while a background CPU load runs (``load`` busy processes, one per core by default), the
situation in which point comparisons of p99 used to roll equal candidates back. Each run gets a
fresh Triton server (its latency summaries start empty, so runs are independent Bernoulli trials)
and its own seed. Rates come with two 95 % intervals: Clopper-Pearson (exact, 1934) and Wilson
(1927). The report (JSON) holds every run's decision, reason and evidence file.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.serving.canary.decisions import PROMOTED, ROLLED_BACK, procedure_text
from pipelines.serving.canary.demo import DemoRepository, build_demo_repository
from pipelines.serving.canary.run import RunSettings, run_abtest
from pipelines.serving.canary.statistics import clopper_pearson, wilson_interval
from pipelines.serving.report import BUILD, json_ready, write_json
from policies.promotion import DEFAULT, PromotionCriteria, triton_metrics_args

BENCH_ABTEST_REPORT = BUILD / "bench" / "abtest.json"
"""The benchmark's JSON report."""
BENCH_ABTEST_DIR = BUILD / "bench" / "abtest"
"""Every run's evidence file, and the demo repository the runs serve."""


@dataclass
class RunRecord:
    """One canary run of an experiment."""

    experiment: str
    index: int
    seed: int
    decision: str
    reason_families: list[str]
    reason: str
    seconds: float
    total_requests: int
    looks: int
    evidence: str


@dataclass
class ExperimentResult:
    """An experiment's runs and the rate it measures."""

    name: str
    """``aa`` or ``ab``."""
    baseline: str
    candidate: str
    measures: str
    """What the rate counts: ``false rollbacks`` (A/A) or ``missed rollbacks`` (A/B)."""
    runs: list[RunRecord] = field(default_factory=list)

    def count(self, decision: str) -> int:
        """Runs that ended with ``decision``."""
        return sum(r.decision == decision for r in self.runs)

    @property
    def hits(self) -> int:
        """The runs the rate counts: rolled back (A/A) or not rolled back (A/B)."""
        rolled = self.count(ROLLED_BACK)
        return rolled if self.name == "aa" else len(self.runs) - rolled

    def summary(self) -> dict[str, Any]:
        """Counts, the rate and its 95 % intervals."""
        n = len(self.runs)
        return {
            "runs": n,
            "promoted": self.count(PROMOTED),
            "rolled_back": self.count(ROLLED_BACK),
            "held": n - self.count(PROMOTED) - self.count(ROLLED_BACK),
            "measures": self.measures,
            "hits": self.hits,
            "rate": self.hits / n if n else float("nan"),
            "clopper_pearson_95": clopper_pearson(self.hits, n),
            "wilson_95": wilson_interval(self.hits, n),
            "rolled_back_by": {
                g: sum(g in r.reason_families for r in self.runs if r.decision == ROLLED_BACK)
                for g in ("accuracy", "latency", "errors")
            },
            "mean_seconds": sum(r.seconds for r in self.runs) / n if n else float("nan"),
        }


@dataclass
class AbtestBenchReport:
    """Everything ``sovml bench abtest`` measured (written as JSON)."""

    experiments: list[ExperimentResult]
    settings: dict[str, Any]
    criteria: dict[str, Any]
    procedure: str
    environment: dict[str, Any]
    seconds: float = 0.0

    @property
    def false_rollback_bound_violated(self) -> bool:
        """The A/A interval lies wholly above the stated false-rollback rate."""
        for e in self.experiments:
            if e.name == "aa" and e.runs:
                return e.summary()["clopper_pearson_95"][0] > self.criteria["false_rollback_rate"]
        return False

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes null)."""
        data = asdict(self)
        for exp, result in zip(data["experiments"], self.experiments, strict=True):
            exp["summary"] = result.summary()
        data["false_rollback_bound_violated"] = self.false_rollback_bound_violated
        return json_ready(data)


@contextlib.contextmanager
def background_load(processes: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``processes`` busy Python loops (one core each) for the duration of the block."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=10)


def bench_abtest(
    *,
    aa_runs: int = 20,
    ab_runs: int = 10,
    delay_ms: float = 30.0,
    load: int | None = None,
    settings: RunSettings | None = None,
    criteria: PromotionCriteria = DEFAULT,
    out: Path = BENCH_ABTEST_REPORT,
    evidence_dir: Path = BENCH_ABTEST_DIR,
    on_run: Callable[[RunRecord], None] | None = None,
) -> AbtestBenchReport:
    """Run the A/A and A/B experiments (see the module docstring) and write ``out``."""
    settings = settings or RunSettings()
    if load is None:
        load = os.cpu_count() or 1
    started = time.monotonic()
    demo = build_demo_repository(evidence_dir / "repository", delay_ms=delay_ms)
    plan = [
        ExperimentResult("aa", *demo.pair("same"), "false rollbacks"),
        ExperimentResult("ab", *demo.pair("worse-latency"), "missed rollbacks"),
    ]
    with background_load(load):
        for experiment, runs in zip(plan, (aa_runs, ab_runs), strict=True):
            for i in range(runs):
                record = _one_run(demo, experiment, i, settings, criteria, evidence_dir)
                experiment.runs.append(record)
                if on_run is not None:
                    on_run(record)
    report = AbtestBenchReport(
        experiments=plan,
        settings={
            **asdict(settings),
            "aa_runs": aa_runs,
            "ab_runs": ab_runs,
            "delay_ms": delay_ms,
            "background_load_processes": load,
        },
        criteria=asdict(criteria),
        procedure=procedure_text(criteria),
        environment={"cpus": os.cpu_count(), "python": platform.python_version()},
        seconds=time.monotonic() - started,
    )
    write_json(out, report.to_json())
    return report


def _one_run(
    demo: DemoRepository,
    experiment: ExperimentResult,
    index: int,
    settings: RunSettings,
    criteria: PromotionCriteria,
    evidence_dir: Path,
) -> RunRecord:
    """One canary on a fresh server (summary windows empty, runs independent)."""
    from pipelines.serving.triton import TritonServer

    seed = settings.seed + 1000 * (experiment.name == "ab") + index
    run_settings = RunSettings(**{**asdict(settings), "seed": seed})
    models = [experiment.baseline, experiment.candidate]
    with TritonServer(demo.root, models, extra_args=triton_metrics_args()) as server:
        result = run_abtest(
            server.endpoints,
            experiment.baseline,
            experiment.candidate,
            demo.data.test_x,
            demo.data.test_y,
            criteria=criteria,
            settings=run_settings,
            run_name=f"{experiment.name}-{index:02d}",
            out_dir=evidence_dir,
        )
    return RunRecord(
        experiment=experiment.name,
        index=index,
        seed=seed,
        decision=result.decision,
        reason_families=list(result.reason_families),
        reason=result.reason,
        seconds=result.seconds,
        total_requests=result.total_requests,
        looks=len(result.looks),
        evidence=result.evidence_path,
    )
