"""``sovml demo``: the showcase behind ``make demo``, end to end on the embedded defaults.

Each step runs the same ``sovml`` command a user would, as a separate process, and the demo ends
with one table a newcomer can read: what ran, whether it did what it should, the key figure and
where its output is. Steps that need an optional runtime (the Triton virtualenv) say so instead of
failing silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infra.config.stackfile import ROOT

DEMO = ROOT / "build" / "demo"


@dataclass
class Step:
    """One demo step: what it shows, the command, and how to read its outcome."""

    title: str
    command: list[str] | Callable[[], list[str]]
    """The command, or a function building it when an earlier step decides its arguments."""
    expect_exit: int = 0
    summary: Callable[[subprocess.CompletedProcess[str]], str] | None = None


@dataclass
class Outcome:
    """A step's result row."""

    title: str
    ok: bool
    figure: str
    seconds: float


def _sovml(*args: str) -> list[str]:
    return [sys.executable, "-m", "infra.cli.app", *args]


def _last_line(proc: subprocess.CompletedProcess[str], contains: str) -> str:
    lines = [ln.strip() for ln in proc.stdout.splitlines() if contains in ln]
    return lines[-1] if lines else ""


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _newest(pattern: str) -> Path | None:
    found = sorted(DEMO.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


TENANT_ARGS = ("tenant", "new", "acme", "--template", "smb", "--zone", "uae")
TENANT_ARGS += ("--email", "ops@acme.example")


def gate_figure() -> str:
    """Pass/fail and checkov counts per stack from the reports the gate wrote."""
    parts = []
    for report in sorted((ROOT / "build").glob("*/report.json")):
        data = _json(report)
        passed = sum(v.get("passed", 0) for v in data.get("checkov", {}).values())
        verdict = "pass" if data.get("ok") else "FAIL"
        parts.append(f"{data.get('stack')}: {verdict} ({passed} checkov checks passed)")
    return "; ".join(parts)


def exported_repository() -> str:
    """The local (Python-backend) Triton repository the demo's pipeline run exported."""
    found = sorted(
        (DEMO / "pipeline").rglob("model_repository_local"), key=lambda p: p.stat().st_mtime
    )
    return str(found[-1]) if found else str(DEMO / "pipeline" / "model_repository_local")


def demo_customer() -> str:
    """The customer with the newest event in the demo run's feature table (the last test row)."""
    import pyarrow.parquet as pq

    table = DEMO / "pipeline" / "feature_store" / "data" / "credit_features.parquet"
    if not table.exists():
        return "0"  # the step then fails with the command's own "unknown customer" message
    frame = pq.read_table(table, columns=["customer_id", "event_timestamp"]).to_pandas()
    return str(int(frame.sort_values("event_timestamp")["customer_id"].iloc[-1]))


def cost_figure(stacks: tuple[str, ...]) -> str:
    """Monthly cost range of each stack, from the ``cost.json`` that ``sovml cost`` wrote."""
    parts = []
    for stack in stacks:
        totals = _json(ROOT / "build" / stack / "cost.json").get("totals", {})
        low, high = totals.get("monthlyMin"), totals.get("monthlyMax")
        parts.append(f"{stack}: ${low:,.0f} - ${high:,.0f} per month" if totals else f"{stack}: -")
    return " | ".join(parts)


def parity_figure(proc: subprocess.CompletedProcess[str]) -> str:
    """How many HTTP/gRPC parity checks passed in ``sovml serve --verify``."""
    rows = [ln for ln in proc.stdout.splitlines() if " http " in ln or " grpc " in ln]
    passed = sum("yes" in ln for ln in rows)
    return f"Triton READY; HTTP and gRPC scores = in-process model ({passed}/{len(rows)} <= 1e-5)"


def load_figure(report: Path = ROOT / "build" / "bench" / "serve.json") -> str:
    """Throughput and p99 of the load run (``sovml bench serve``'s report), batch 1 against
    dynamic batching."""
    data = _json(report)
    parts = []
    for r in data.get("results", []):
        lat = r["latency_ms"]
        parts.append(
            f"{r['name']}: {r['completed']} req, {r['errors']} errors, "
            f"{r['throughput_rps']:.0f} req/s, p99 {lat['p99']:.1f} ms"
        )
    return "; ".join(parts)


def steps() -> list[Step]:
    """The demo, in order; later steps use what earlier ones wrote under build/demo/."""
    stacks = DEMO / "stacks"
    return [
        Step(
            "synth every stack (Pulumi program under the SDK mocks)",
            _sovml("synth", "--all", "--quiet"),
            summary=lambda p: f"{p.stdout.count('resources in')} stacks synthesized",
        ),
        Step(
            "policy gate on every stack (rules, k8s schemas, checkov)",
            _sovml("check", "--all"),
            summary=lambda _: gate_figure(),
        ),
        Step(
            "new SMB tenant 'acme' from the template",
            _sovml(*TENANT_ARGS, "--stacks-dir", str(stacks)),
            summary=lambda p: _last_line(p, "created") or "created",
        ),
        Step(
            "gate on the tenant stack",
            _sovml("check", "acme", "--stacks-dir", str(stacks), "--no-checkov"),
            summary=lambda _: "0 rule violations, schemas valid",
        ),
        Step(
            "monthly cost: prod-uae vs acme",
            _sovml("cost", "prod-uae", "--compare", "acme", "--stacks-dir", str(stacks)),
            summary=lambda _: cost_figure(("prod-uae", "acme")),
        ),
        Step(
            "training pipeline on kfp.local (ingest -> ... -> encrypt)",
            _sovml(
                "pipeline", "run", "training", "--local", "--output-dir", str(DEMO / "pipeline")
            ),
            summary=lambda p: _last_line(p, "gate:") or _last_line(p, "finished"),
        ),
        Step(
            "online features of the newest customer (Feast, as served to the model)",
            lambda: _sovml(
                "features",
                "get",
                demo_customer(),
                "--repo",
                str(DEMO / "pipeline" / "feature_store"),
            ),
            summary=lambda p: _last_line(p, "service") or "features returned",
        ),
        Step(
            "serve the exported model on the real Triton server, check parity",
            lambda: _sovml("serve", exported_repository(), "--once", "--verify"),
            summary=parity_figure,
        ),
        Step(
            "canary: candidate trained on shuffled labels (worse)",
            _sovml("abtest", "--scenario", "worse-accuracy"),
            summary=lambda p: _last_line(p, "decision:"),
        ),
        Step(
            "canary: better candidate, promoted 5% -> 25% -> 50% -> 100%",
            _sovml("abtest", "--scenario", "better"),
            summary=lambda p: _last_line(p, "decision:"),
        ),
        Step(
            "load: 10,000 requests from 8 gRPC clients, batch 1 vs dynamic batching",
            _sovml("bench", "serve"),
            summary=lambda _: load_figure(),
        ),
        Step(
            "drift: training reference vs a shifted window",
            [sys.executable, "-m", "infra.demo.data", "drift-inputs", str(DEMO / "drift")],
            summary=lambda _: "reference and shifted windows written",
        ),
        Step(
            "drift report and retraining decision",
            _sovml(
                "drift",
                str(DEMO / "drift" / "reference.parquet"),
                str(DEMO / "drift" / "current.parquet"),
                "--html",
                str(DEMO / "drift" / "report.html"),
            ),
            expect_exit=1,
            summary=lambda p: _last_line(p, "retrain") or _last_line(p, "drift"),
        ),
    ]


def run(console: Console | None = None) -> list[Outcome]:
    """Run every step, printing each command's output, and return the outcomes."""
    console = console or Console()
    DEMO.mkdir(parents=True, exist_ok=True)
    (DEMO / "stacks").mkdir(exist_ok=True)
    for old in (DEMO / "stacks").glob("Pulumi.*.yaml"):
        old.unlink()
    for f in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        (DEMO / "stacks" / f.name).write_text(f.read_text())
    outcomes = []
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "120")}
    for i, step in enumerate(steps(), 1):
        console.rule(f"[bold]{i}. {step.title}")
        started = time.perf_counter()
        command = step.command() if callable(step.command) else step.command
        shown = " ".join(
            ["sovml", *command[3:]] if command[1:3] == ["-m", "infra.cli.app"] else command
        )
        with console.status(f"{shown} ..."):
            proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - started
        console.print(proc.stdout.rstrip(), markup=False, highlight=False)
        if proc.stderr.strip():
            console.print(proc.stderr.rstrip()[-4000:], markup=False, highlight=False)
        ok = proc.returncode == step.expect_exit
        figure = step.summary(proc) if (ok and step.summary) else f"exit {proc.returncode}"
        outcomes.append(Outcome(step.title, ok, figure, elapsed))
    return outcomes


def summary_table(outcomes: list[Outcome]) -> Table:
    """The closing table."""
    table = Table(title="sovereign-ml demo: what just ran", title_justify="left", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("result")
    table.add_column("key figure", overflow="fold")
    table.add_column("time", justify="right")
    for i, o in enumerate(outcomes, 1):
        table.add_row(
            str(i),
            o.title,
            "[green]ok[/]" if o.ok else "[red]FAILED[/]",
            o.figure,
            f"{o.seconds:.0f}s",
        )
    return table
