"""``sovml demo``: the showcase behind ``make demo``, end to end on the embedded defaults.

Each step runs the same ``sovml`` command a user would, as a separate process, and the demo ends
with one table a newcomer can read: what ran, what it was expected to do, whether it did, the key
figure and where its output is. Steps that need an optional runtime (the Triton virtualenv) say so
instead of failing silently.

A demo that cannot lie: every step declares its expected outcome (:class:`Expect`), checked from
the exit status and the evidence files the command wrote (JSON), never from its coloured terminal
text; evidence files are removed before their step runs, so a stale one cannot pass for it. A
step whose outcome differs is marked FAILED with the evidence, and ``sovml demo`` exits non-zero.
The canaries must end as their titles say, for the stated reason: the candidate trained on
shuffled labels rolled back by the accuracy test, the better candidate promoted.

The registry steps follow the version the pipeline step registered (read from the demo's
lifecycle log): shown as a challenger with its tuning trials, approved with ``sovml model
approve``, moved by the better canary (``--model-version``), shown as champion. Every step
talks to one MLflow server started for the demo (fresh store under ``build/demo/mlflow``). The
canary's pair is the demo's own variants (a first run has no champion to compare the pipeline's
model with), so the registry move shows the wiring, not a comparison of that version.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from infra.config.stackfile import ROOT
from infra.demo.expect import (
    MODEL,
    Expect,
    audit_broken,
    audit_intact,
    bench_ok,
    canary,
    canary_moved,
    evidence_ok,
    exits,
    read_json,
    registry_figure,
    registry_state,
    registry_version,
    shown_version,
    tuned_challenger,
)

DEMO = ROOT / "build" / "demo"


@dataclass
class Step:
    """One demo step: what it shows, the command, what it must produce, its key figure."""

    title: str
    command: list[str] | Callable[[], list[str]]
    """The command, or a function building it when an earlier step decides its arguments."""
    expect: Expect
    summary: Callable[[subprocess.CompletedProcess[str]], str] | None = None
    fresh: tuple[Path, ...] = ()
    """Evidence files removed before the step runs (its check reads only what it wrote)."""


@dataclass
class Outcome:
    """A step's result row."""

    title: str
    ok: bool
    figure: str
    seconds: float
    expected: str = ""
    evidence: str = ""
    """What the check found (shown in place of the figure when the step failed)."""


def _sovml(*args: str) -> list[str]:
    return [sys.executable, "-m", "infra.cli.app", *args]


def _last_line(proc: subprocess.CompletedProcess[str], contains: str) -> str:
    lines = [ln.strip() for ln in proc.stdout.splitlines() if contains in ln]
    return lines[-1] if lines else ""


def _newest(pattern: str) -> Path | None:
    found = sorted(DEMO.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


TENANT_ARGS = ("tenant", "new", "acme", "--template", "smb", "--zone", "uae")
TENANT_ARGS += ("--email", "ops@acme.example")
TENANT_ARGS += ("--alert-webhook", "https://itsm.acme.example/alertmanager")
TENANT_ARGS += ("--account-id", "111122223333")
TENANT_ARGS += ("--oidc-issuer", "https://login.acme.example/realms/ml")
TENANT_ARGS += ("--oidc-jwks-uri", "https://login.acme.example/realms/ml/certs")


def gate_figure() -> str:
    """Pass/fail and checkov counts of the stacks ``check --all`` judges (those in ``stacks/``),
    from their reports; other folders under build/ (earlier runs, fixtures) are not this step's."""
    from infra.config.stackfile import list_stacks

    parts = []
    for stack in list_stacks():
        report = ROOT / "build" / stack / "report.json"
        if not report.is_file():
            parts.append(f"{stack}: no report")
            continue
        data = read_json(report)
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
        totals = read_json(ROOT / "build" / stack / "cost.json").get("totals", {})
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
    data = read_json(report)
    parts = []
    for r in data.get("results", []):
        lat = r["latency_ms"]
        parts.append(
            f"{r['name']}: {r['completed']} req, {r['errors']} errors, "
            f"{r['throughput_rps']:.0f} req/s, p99 {lat['p99']:.1f} ms"
        )
    return "; ".join(parts)


ABTEST = DEMO / "abtest"
"""Where the demo's canaries write their evidence."""


def canary_figure(evidence: Path) -> str:
    """The canary's decision, what decided it and its cost, from its evidence file."""
    data = read_json(evidence)
    if not data:
        return "-"
    families = ", ".join(data.get("reason_families", [])) or "every guard passed"
    looks = data.get("looks") or [{}]
    return (
        f"{data['decision']} ({families}) at {data['final_weight']:g}% after "
        f"{data['total_requests']:,} requests, {data['seconds']:.1f}s, "
        f"{len(data.get('looks', []))} looks; last: {looks[-1].get('reason', '')}"
    )


APPROVAL = ("--by", "demo", "--reason", "gate and fairness passed (demo)")
"""Who approves the demo's version, and why."""
AUDIT_LOG = DEMO / "audit" / "lifecycle.jsonl"
"""The demo's own lifecycle log: started empty by each demo, so its chain holds this run only."""
RUN_EVENTS = (
    "pipeline.run.started",
    "model.registered",
    "artifact.encrypted",
    "pipeline.run.finished",
    "model.approved",
    "model.rolled_back",
    "model.promoted",
    "drift.decided",
)
"""Events the demo's steps must have recorded by the time the log is verified."""


def _abtest(scenario: str) -> tuple[list[str], Path]:
    """``sovml abtest`` of a demo scenario and the evidence file it writes."""
    run = f"demo-{scenario}"
    command = _sovml("abtest", "--scenario", scenario, "--run", run, "--out-dir", str(ABTEST))
    return command, ABTEST / f"{run}.json"


def steps() -> list[Step]:
    """The demo, in order; later steps use what earlier ones wrote under build/demo/."""
    stacks = DEMO / "stacks"
    worse, worse_json = _abtest("worse-accuracy")
    better, better_json = _abtest("better")
    bench = ROOT / "build" / "bench" / "serve.json"
    drift = DEMO / "drift"
    tampered = DEMO / "audit" / "tampered.jsonl"
    evidence = DEMO / "evidence"
    return [
        Step(
            "synth every stack (Pulumi program under the SDK mocks)",
            _sovml("synth", "--all", "--quiet"),
            exits(0),
            summary=lambda p: f"{p.stdout.count('resources in')} stacks synthesized",
        ),
        Step(
            "policy gate on every stack (rules, k8s schemas, checkov)",
            _sovml("check", "--all"),
            exits(0),
            summary=lambda _: gate_figure(),
        ),
        Step(
            "new SMB tenant 'acme' from the template",
            _sovml(*TENANT_ARGS, "--stacks-dir", str(stacks)),
            exits(0, stacks / "Pulumi.acme.yaml"),
            summary=lambda p: _last_line(p, "created") or "created",
        ),
        Step(
            "gate on the tenant stack",
            _sovml("check", "acme", "--stacks-dir", str(stacks), "--no-checkov"),
            exits(0),
            summary=lambda _: "0 rule violations, schemas valid",
        ),
        Step(
            "monthly cost: prod-uae vs acme",
            _sovml("cost", "prod-uae", "--compare", "acme", "--stacks-dir", str(stacks)),
            exits(0, ROOT / "build" / "acme" / "cost.json"),
            summary=lambda _: cost_figure(("prod-uae", "acme")),
            fresh=(ROOT / "build" / "acme" / "cost.json",),
        ),
        Step(
            "training pipeline on kfp.local (ingest -> ... -> encrypt)",
            _sovml(
                "pipeline", "run", "training", "--local", "--output-dir", str(DEMO / "pipeline")
            ),
            exits(0),
            summary=lambda p: _last_line(p, "gate:") or _last_line(p, "finished"),
        ),
        Step(
            "registry: the run's version passed the gate (candidate -> challenger), trials tracked",
            lambda: _sovml("model", "show", MODEL, str(registry_version(AUDIT_LOG)), "--json"),
            tuned_challenger(),
            summary=lambda p: registry_figure(shown_version(p)),
        ),
        Step(
            "registry: approve the challenger for production (sovml model approve)",
            lambda: _sovml("model", "approve", MODEL, str(registry_version(AUDIT_LOG)), *APPROVAL),
            exits(0),
            summary=lambda p: _last_line(p, "approved") or "approved",
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
            exits(0),
            summary=lambda p: _last_line(p, "service") or "features returned",
        ),
        Step(
            "serve the exported model on the real Triton server, check parity",
            lambda: _sovml("serve", exported_repository(), "--once", "--verify"),
            exits(0),
            summary=parity_figure,
        ),
        Step(
            "canary: candidate trained on shuffled labels, rolled back by the accuracy test",
            worse,
            canary(worse_json, "rolled_back", "accuracy"),
            summary=lambda _: canary_figure(worse_json),
            fresh=(worse_json,),
        ),
        Step(
            "canary: better candidate, promoted 5% -> 25% -> 50% -> 100%, the version with it",
            lambda: [
                *better,
                "--model-version",
                f"{MODEL}:{registry_version(AUDIT_LOG)}",
                "--by",
                "demo",
            ],
            canary_moved(better_json),
            summary=lambda _: canary_figure(better_json),
            fresh=(better_json,),
        ),
        Step(
            "registry: sovml model show, champion after approval and canary",
            lambda: _sovml("model", "show", MODEL, str(registry_version(AUDIT_LOG)), "--json"),
            registry_state("champion", approval="by=demo", canary="decision=promoted"),
            summary=lambda p: registry_figure(shown_version(p)),
        ),
        Step(
            "load: 10,000 requests from 8 gRPC clients, batch 1 vs dynamic batching",
            _sovml("bench", "serve"),
            bench_ok(bench),
            summary=lambda _: load_figure(),
            fresh=(bench,),
        ),
        Step(
            "drift: training reference vs a shifted window",
            [sys.executable, "-m", "infra.demo.data", "drift-inputs", str(drift)],
            exits(0, drift / "reference.parquet", drift / "current.parquet"),
            summary=lambda _: "reference and shifted windows written",
        ),
        Step(
            "drift report and retraining decision",
            _sovml(
                "drift",
                str(drift / "reference.parquet"),
                str(drift / "current.parquet"),
                "--html",
                str(drift / "report.html"),
            ),
            # Exit 1 is the retraining decision: the shifted window has drifted.
            exits(1, drift / "report.html"),
            summary=lambda p: _last_line(p, "retrain") or _last_line(p, "drift"),
            fresh=(drift / "report.html",),
        ),
        Step(
            "lifecycle log: every run, registration, canary and drift decision, hash-chained",
            _sovml("audit", "verify", "--log", str(AUDIT_LOG)),
            audit_intact(AUDIT_LOG, RUN_EVENTS),
        ),
        Step(
            "lifecycle log: a copy with entry 1 edited is caught",
            [sys.executable, "-m", "infra.demo.data", "tamper", str(AUDIT_LOG), str(tampered)],
            exits(0, tampered),
            summary=lambda _: "copy written, entry 1's subject changed",
            fresh=(tampered,),
        ),
        Step(
            "sovml audit verify on the edited copy",
            _sovml("audit", "verify", "--log", str(tampered), "--json"),
            audit_broken(tampered, 1, "edited"),
        ),
        Step(
            "compliance evidence pack for prod-uae (PDPL, ISO 27001, CIS EKS)",
            _sovml("evidence", "prod-uae", "--out", str(evidence)),
            evidence_ok(evidence / "evidence.json"),
            fresh=(evidence / "evidence.json", evidence / "evidence.html"),
        ),
        Step(
            "offboarding tenant 'acme': the crypto-shredding plan (dry run)",
            _sovml("tenant", "offboard", "acme", "--dry-run", "--stacks-dir", str(stacks)),
            exits(0),
            summary=lambda p: _last_line(p, "dry run") or "plan printed",
        ),
    ]


def run_step(
    step: Step, env: dict[str, str], command: list[str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    """Run one step (its evidence files removed first) and judge it against its expectation."""
    for path in step.fresh:
        path.unlink(missing_ok=True)
    started = time.perf_counter()
    if command is None:
        command = step.command() if callable(step.command) else step.command
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    return proc, judge(step, proc, elapsed)


def judge(step: Step, proc: subprocess.CompletedProcess[str], seconds: float) -> Outcome:
    """The step's row: ok only when its expectation holds; the evidence either way."""
    ok, evidence = step.expect.check(proc)
    if not ok:
        figure = f"expected {step.expect.what}; got {evidence}"
    else:
        figure = step.summary(proc) if step.summary else evidence
    return Outcome(step.title, ok, figure, seconds, step.expect.what, evidence)


def run(console: Console | None = None) -> list[Outcome]:
    """Run every step, printing each command's output, and return the outcomes."""
    console = console or Console()
    DEMO.mkdir(parents=True, exist_ok=True)
    (DEMO / "stacks").mkdir(exist_ok=True)
    for old in (DEMO / "stacks").glob("Pulumi.*.yaml"):
        old.unlink()
    for f in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        (DEMO / "stacks" / f.name).write_text(f.read_text())
    for old in (AUDIT_LOG, AUDIT_LOG.with_name(AUDIT_LOG.name + ".head")):
        old.unlink(missing_ok=True)
    env = {
        **os.environ,
        "COLUMNS": os.environ.get("COLUMNS", "120"),
        "SOVML_AUDIT_LOG": str(AUDIT_LOG),
    }
    env.pop("SOVML_AUDIT_BUCKET", None)
    with contextlib.ExitStack() as tracking:
        _shared_tracking(console, tracking, env)
        outcomes = [_run_one(console, i, step, env) for i, step in enumerate(steps(), 1)]
    return outcomes


def _shared_tracking(console: Console, stack: contextlib.ExitStack, env: dict[str, str]) -> None:
    """One MLflow server for every step (``$SOVML_TRACKING_URI`` when set, else the embedded one
    on a fresh ``build/demo/mlflow``), so the pipeline's run and the registry steps see the
    same registry and no step pays a server start of its own."""
    from pipelines.registry.server import TRACKING_ENV, TrackingServerError, tracking_server

    if not os.environ.get(TRACKING_ENV):
        shutil.rmtree(DEMO / "mlflow", ignore_errors=True)
    try:
        with console.status("starting the MLflow tracking server ..."):
            env[TRACKING_ENV] = stack.enter_context(tracking_server(DEMO / "mlflow"))
    except TrackingServerError as exc:
        # Each step that needs it then fails and says so; the demo does not hide it.
        console.print(Text(f"no tracking server: {exc}", style="red"))


def _run_one(console: Console, i: int, step: Step, env: dict[str, str]) -> Outcome:
    """Run step ``i``, print its output and verdict, return its outcome."""
    console.rule(Text(f"{i}. {step.title}", style="bold"))
    command = step.command() if callable(step.command) else step.command
    shown = " ".join(
        ["sovml", *command[3:]] if command[1:3] == ["-m", "infra.cli.app"] else command
    )
    with console.status(f"{shown} ..."):
        proc, outcome = run_step(step, env, command)
    console.print(proc.stdout.rstrip(), markup=False, highlight=False)
    if proc.stderr.strip():
        console.print(proc.stderr.rstrip()[-4000:], markup=False, highlight=False)
    verdict = "as expected" if outcome.ok else "NOT as expected"
    console.print(
        Text(f"expected {outcome.expected}: {verdict} ({outcome.evidence})"),
        style="green" if outcome.ok else "red",
    )
    return outcome


def seconds_text(seconds: float) -> str:
    """A duration as the table shows it: ``42s``, ``3m 05s`` from a minute on."""
    whole = round(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m {whole % 60:02d}s"


def summary_table(outcomes: list[Outcome], setup_seconds: float | None = None) -> Table:
    """The closing table: each step, what it was expected to do, whether it did, its figure and
    its wall time; the footer sums the steps and, when ``make demo`` measured it, the set-up
    (virtualenvs) before them, so the last figure is the whole first run."""
    steps_total = sum(o.seconds for o in outcomes)
    footer = f"steps {seconds_text(steps_total)}"
    total = steps_total
    if setup_seconds is not None:
        footer = f"set-up {seconds_text(setup_seconds)} + {footer}"
        total += setup_seconds
    table = Table(
        title="sovereign-ml demo: what just ran",
        title_justify="left",
        show_lines=True,
        show_footer=True,
    )
    table.add_column("#", justify="right")
    table.add_column("step", footer=f"total: {footer}")
    table.add_column("expected")
    table.add_column("result")
    table.add_column("key figure (or what happened instead)", overflow="fold")
    table.add_column("time", justify="right", footer=seconds_text(total))
    for i, o in enumerate(outcomes, 1):
        table.add_row(
            str(i),
            o.title,
            o.expected,
            Text("ok", style="green") if o.ok else Text("FAILED", style="red"),
            o.figure,
            seconds_text(o.seconds),
        )
    return table
