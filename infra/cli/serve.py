"""``sovml serve``, ``sovml abtest``, ``sovml bench serve``: the real Triton server, locally.

Registered in ``infra/cli/app.py``::

    from infra.cli.serve import abtest_command, bench_serve_command, serve_command

    app.command("serve")(serve_command)
    app.command("abtest")(abtest_command)
    bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
    bench_app.command("serve")(bench_serve_command)
    bench_app.command("abtest")(bench_abtest_command)
    app.add_typer(bench_app, name="bench")

The server is Triton 2.51.0 from the ``nvidia-pytriton`` wheel in ``.venv-triton``
(:mod:`pipelines.serving.triton`), bound to 127.0.0.1 on free ports. What the commands check and
decide lives in :mod:`pipelines.serving` (``verify``, ``canary``, ``bench``, ``report``); here
options are parsed and results rendered.

Exit codes as in :mod:`infra.cli.common`, each error one ``error: ...`` line:

* ``0`` success;
* ``1`` a negative result: ``serve --verify`` found Triton's answers differ from the in-process
  model, a load run had errors, with ``--fail-on-rollback`` a canary that was not promoted, or
  the A/A benchmark's false-rollback interval lies above the stated rate;
* ``2`` bad input, refused before any server starts, by one validator per input kind:

  - the model repository and ``--model`` (:func:`pipelines.serving.layout.check_repository`,
    every command here): missing or not a folder, no model in it, an unknown model (the ones
    there are listed), a model without ``config.pbtxt`` or without a numeric version folder,
    a served version without its backend's file (``model.py`` for the python backend,
    ``model.pt``/``model.onnx``, the files its parameters name), each naming model, version
    and file;
  - ``serve --verify``: the latest version lacks ``model.pt``
    (:func:`pipelines.serving.verify.check_verifiable`), or it is not TorchScript;
  - ``serve --log-file`` (:func:`pipelines.serving.triton.check_log_path`): a folder, a special
    file, a path under a file, or not writable;
  - ``serve --ready-timeout`` (:func:`pipelines.serving.triton.check_ready_timeout`): nan, inf,
    0, negative or above 3600 seconds;
  - ``abtest --model-version``/``--by`` (:func:`infra.cli.model.canary_target`), or a version
    the registry could not promote (not an approved challenger), before any model is built;
* ``3`` an environment error: Triton (``.venv-triton``) or the tracking server missing, the
  server fails to start or get ready (the line is followed by the log's tail), or exits.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from infra.cli.common import (
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    consoles,
    error_line,
    fail,
    joined,
    shown_path,
    stoppable,
    styled,
)
from pipelines.serving.report import (
    ABTEST_DEMO_REPOSITORY,
    ABTEST_DIR,
    BENCH_COLUMNS,
    BENCH_DEMO_REPOSITORY,
    BENCH_REPORT,
    LOOK_COLUMNS,
    bench_cells,
    bench_title,
    look_cells,
    look_title,
)
from pipelines.serving.repository import repository_models
from pipelines.serving.verify import VERIFY_ATOL

_DECISION_STYLE = {"promote": "green", "continue": "", "hold": "yellow", "rollback": "red"}
_RESULT_STYLE = {"promoted": "green", "rolled_back": "red", "held": "yellow"}


def _start(err: Console, repository: Path, models: list[str], **kwargs: Any) -> Any:
    """A started TritonServer, or a clean exit: 2 for bad input, 3 when Triton is missing or
    does not start (the error line, then the server log's tail)."""
    from pipelines.serving.triton import TritonServer, TritonStartError, TritonUnavailableError

    try:
        server = TritonServer(repository, models, **kwargs)
    except ValueError as exc:  # ServingInputError: the repository, models, log path, timeout
        fail(err, str(exc))
    except TritonUnavailableError as exc:
        fail(err, f"Triton is not available: {exc}", EXIT_INTERNAL)
    try:
        return server.start()
    except TritonStartError as exc:
        first, _, tail = str(exc).partition("\n")
        error_line(err, f"{first} (server log tail below)" if tail else first)
        if tail:
            _print_log_tail(err, tail)
        raise typer.Exit(EXIT_INTERNAL) from None
    except OSError as exc:
        fail(err, f"could not start tritonserver: {exc}", EXIT_INTERNAL)


def _print_log_tail(err: Console, tail: str) -> None:
    """The server log's tail after an error line, indented: the log's own ``error: ...`` lines
    must not read as more error lines of ours."""
    indented = "\n".join(f"  {line}" for line in tail.splitlines())
    err.print(indented, markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _serving(
    console: Console, err: Console, repository: Path, models: list[str], first_status: str
) -> Iterator[tuple[Any, Status]]:
    """A started server and a live status line for one run on it; stops both at the end.

    A ``ValueError`` from the run is bad input (exit 2).
    """
    from policies.promotion import triton_metrics_args

    with console.status(f"starting Triton with {' and '.join(models)} ..."):
        # The summary levels the canary's latency guard reads (the cluster's pods get the same).
        server = _start(err, repository, models, extra_args=triton_metrics_args())
    try:
        status = console.status(first_status)
        status.start()
        try:
            yield server, status
        except ValueError as exc:
            fail(err, str(exc))
        finally:
            status.stop()
    finally:
        server.stop()


def _print_server(console: Console, server: Any, models: list[str], seconds: float) -> None:
    from pipelines.serving.verify import describe

    endpoints = Table(title=f"Triton ready in {seconds:.1f}s", title_justify="left")
    endpoints.add_column("endpoint")
    endpoints.add_column("address")
    endpoints.add_row("HTTP/REST (KServe v2)", f"http://{server.http_url}")
    endpoints.add_row("gRPC (KServe v2)", server.grpc_url)
    endpoints.add_row("Prometheus metrics", server.metrics_url)
    console.print(endpoints)
    described = describe(server.http_url, models)
    console.print(
        f"server: {described.name} {described.version}, repository {server.model_repository}"
    )
    table = Table(title="models", title_justify="left", show_lines=True)
    for col in ("model", "versions", "inputs", "outputs", "config"):
        table.add_column(col, overflow="fold")
    for m in described.models:
        table.add_row(
            joined(styled(m.name, "green"), " READY"),
            ", ".join(m.versions),
            m.inputs,
            m.outputs,
            m.config,
        )
    console.print(table)


def serve_command(
    model_repository: Annotated[Path, typer.Argument(help="Triton model repository folder.")],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model to load (repeatable); default: every model."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Exit right after the server is ready (tests, demo).")
    ] = False,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the server and models to be READY.")
    ] = 120.0,
    log_file: Annotated[
        Path | None, typer.Option(help="Server log file (default: a temporary file).")
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Score seeded rows over HTTP and gRPC and compare with the version's model.pt "
            f"run in this process (max |diff| <= {VERIFY_ATOL:g}, else exit 1).",
        ),
    ] = False,
) -> None:
    """Serve MODEL_REPOSITORY with the real Triton server on 127.0.0.1 until Ctrl-C.

    Prints the HTTP, gRPC and metrics endpoints, each model's metadata and a config summary.
    Every input is checked before the server starts (exit 2 naming what is wrong).
    """
    from pipelines.serving.layout import ServingInputError, check_repository
    from pipelines.serving.triton import check_log_path, check_ready_timeout
    from pipelines.serving.verify import check_verifiable

    console, err = consoles()
    try:
        check_ready_timeout(ready_timeout, "--ready-timeout")
        if log_file is not None:
            check_log_path(log_file, "--log-file")
        layouts = check_repository(model_repository, model or None)
        if verify:
            check_verifiable(layouts)
    except ServingInputError as exc:
        fail(err, str(exc))
    models = [layout.name for layout in layouts]
    # Ctrl-C and a plain `kill` both end in the `finally` below, which stops the server.
    with stoppable():
        started = time.monotonic()
        with console.status(f"starting Triton with {', '.join(models)} ..."):
            server = _start(
                err, model_repository, models, ready_timeout_s=ready_timeout, log_path=log_file
            )
        try:
            _print_server(console, server, models, time.monotonic() - started)
            if verify and not _verify(console, err, server, model_repository, models):
                raise typer.Exit(EXIT_NEGATIVE)
            if once:
                return
            console.print("serving; Ctrl-C to stop")
            while server.running:
                time.sleep(0.5)
            error_line(err, "tritonserver exited unexpectedly (server log tail below)")
            _print_log_tail(err, server.log_tail())
            raise typer.Exit(EXIT_INTERNAL)
        except KeyboardInterrupt:
            console.print("stopping ...")
        finally:
            server.stop()


def _verify(
    console: Console, err: Console, server: Any, repository: Path, models: list[str]
) -> bool:
    """Print the parity of Triton's answers with the in-process TorchScript; True if all hold.

    A ``model.pt`` that is not TorchScript is bad input (exit 2).
    """
    from pipelines.serving.layout import ServingInputError
    from pipelines.serving.verify import verify_parity

    try:
        checks = verify_parity(server.endpoints, repository, models)
    except ServingInputError as exc:
        fail(err, str(exc))
    table = Table(title="inference parity (Triton vs in-process TorchScript)", title_justify="left")
    for col in ("model", "version", "protocol", "rows", "max |diff|", f"<= {VERIFY_ATOL:g}"):
        table.add_column(col, justify="left" if col in ("model", "protocol") else "right")
    for c in checks:
        ok = styled("yes", "green") if c.ok else styled("NO", "red")
        table.add_row(c.model, c.version, c.protocol, str(c.rows), f"{c.max_diff:.2e}", ok)
    console.print(table)
    return all(c.ok for c in checks)


def look_table(result: Any) -> Table:
    """Per-look evidence: weight, requests, accuracy with CI, p99, errors, LLR, decision."""
    a, b = result.baseline, result.candidate
    table = Table(title=look_title(a, b), title_justify="left")
    for col in LOOK_COLUMNS:
        table.add_column(col, justify="right" if col != "decision" else "left")
    for look in result.looks:
        *cells, decision = look_cells(look, a, b)
        table.add_row(*cells, styled(decision, _DECISION_STYLE.get(decision, "")))
    return table


def abtest_command(
    scenario: Annotated[
        str,
        typer.Option(
            help="Demo: better, worse-accuracy, worse-latency or same (ignored with --baseline)."
        ),
    ] = "better",
    model_repository: Annotated[
        Path | None, typer.Option(help="Repository serving both variants (with --baseline).")
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="Baseline (A) model name.")] = None,
    candidate: Annotated[str | None, typer.Option(help="Candidate (B) model name.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Labelled traffic: .npz with 'features' and 'labels'.")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Concurrent client threads.")] = 1,
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
    seed: Annotated[int, typer.Option(help="Seeds the router and the traffic.")] = 0,
    max_requests: Annotated[int, typer.Option(help="Bound on all requests.")] = 400_000,
    max_seconds: Annotated[float, typer.Option(help="Bound on the analysis' wall time.")] = 240.0,
    mirror: Annotated[
        bool, typer.Option(help="Mirror baseline traffic to the candidate below 50%.")
    ] = True,
    delay_ms: Annotated[
        float | None,
        typer.Option(help="Demo: the slow variant's sleep per execution, ms (default 50)."),
    ] = None,
    run: Annotated[str | None, typer.Option(help="Evidence name (build/abtest/RUN.json).")] = None,
    out_dir: Annotated[Path, typer.Option(help="Evidence folder.")] = ABTEST_DIR,
    fail_on_rollback: Annotated[
        bool, typer.Option(help="Exit 1 unless the candidate was promoted.")
    ] = False,
    model_version: Annotated[
        str | None,
        typer.Option(
            "--model-version",
            help="MODEL:VERSION the candidate is in the registry: promoted -> champion (needs "
            "its approval, checked before the canary starts), rolled back -> rejected, held -> "
            "unchanged.",
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who runs the canary (with --model-version).")
    ] = None,
) -> None:
    """Canary a candidate against a baseline on the real Triton server: promote, hold, rollback.

    Without --baseline/--candidate a demo repository is built (seeded data, a trained model, one
    trained on shuffled labels, one that sleeps) and SCENARIO picks the pair. Decisions follow
    policies/promotion.py; the procedure and its error rates are printed and stored with the
    evidence. With --model-version the registry version moves as the canary decided.
    """
    from infra.cli.model import canary_registry
    from pipelines.serving.canary import decisions
    from pipelines.serving.canary import run as canary_run
    from pipelines.serving.load import PROTOCOLS
    from policies.promotion import DEFAULT

    console, err = consoles()
    if protocol not in PROTOCOLS or concurrency < 1 or max_requests < 1:
        fail(err, "--protocol must be grpc or http; --concurrency, --max-requests >= 1")
    if delay_ms is not None and not 0 <= delay_ms < math.inf:
        fail(err, f"--delay-ms {delay_ms}: allowed a number of milliseconds >= 0")
    with canary_registry(model_version, by) as move_version:
        custom = (model_repository, baseline, candidate, data)
        if any(v is not None for v in custom):
            repo_dir, pair, traffic = _custom_pair(err, model_repository, baseline, candidate, data)
        else:
            repo_dir, pair, traffic = _demo_pair(console, err, scenario, delay_ms)
        console.print(
            joined(styled("procedure", "bold"), f": {decisions.procedure_text(DEFAULT)}"),
            soft_wrap=False,
        )
        settings = canary_run.RunSettings(
            concurrency, protocol, seed, max_requests, max_seconds, mirror
        )
        with _serving(console, err, repo_dir, list(pair), "step 1 ...") as (server, status):

            def on_look(look: Any) -> None:
                status.update(
                    f"step {look.step} ({look.weight:g}%), look {look.look}: {look.decision} ..."
                )

            result = canary_run.run_abtest(
                server.endpoints,
                *pair,
                *traffic,
                criteria=DEFAULT,
                settings=settings,
                run_name=run,
                out_dir=out_dir,
                on_look=on_look,
            )
        console.print(look_table(result))
        console.print(
            joined(
                "decision: ",
                styled(result.decision.upper(), _RESULT_STYLE.get(result.decision, "")),
                f" after {result.seconds:.1f}s, {result.total_requests} requests: {result.reason}",
            )
        )
        console.print(f"evidence: {shown_path(Path(result.evidence_path))}")
        moved = move_version(result, _record_canary(err, result, model_version))
        if moved:
            console.print(f"registry: {moved}", soft_wrap=True)
    if fail_on_rollback and result.decision != "promoted":
        raise typer.Exit(EXIT_NEGATIVE)


CANARY_EVENTS = dict(promoted="model.promoted", rolled_back="model.rolled_back", held="canary.held")
"""The lifecycle-log event of each canary outcome."""


def _record_canary(err: Console, result: Any, model_version: str | None = None) -> dict[str, Any]:
    """The canary's decision in the lifecycle log, with its reason; exit 3 when it cannot be.

    The evidence file is recorded by path: it is written once per run name. Returns the entry.
    """
    from pipelines.audit import log as audit

    details: dict[str, Any] = {
        "decision": result.decision,
        "reason": str(result.reason)[:1024],
        "final_weight": float(result.final_weight),
        "requests": int(result.total_requests),
        "run": str(result.run)[:1024],
    }
    if model_version is not None:
        details["model_version"] = model_version
    try:
        return audit.append(
            CANARY_EVENTS[result.decision],
            f"{result.candidate} vs {result.baseline}",
            outputs={"evidence": audit.file_ref(result.evidence_path)},
            details=details,
        )
    except (audit.AuditError, OSError, KeyError) as exc:
        fail(err, f"cannot record the canary decision: {exc}", EXIT_INTERNAL)


def _custom_pair(
    err: Console,
    repository: Path | None,
    baseline: str | None,
    candidate: str | None,
    data: Path | None,
) -> tuple[Path, tuple[str, str], tuple[Any, Any]]:
    """The repository, (baseline, candidate) and labelled traffic the options name."""
    from pipelines.serving.canary.run import load_labelled

    if repository is None or baseline is None or candidate is None or data is None:
        fail(err, "--model-repository, --baseline, --candidate and --data go together")
    try:
        traffic = load_labelled(data)
    except (OSError, ValueError) as exc:
        fail(err, str(exc))
    return repository, (baseline, candidate), traffic


def _demo_pair(
    console: Console, err: Console, scenario: str, delay_ms: float | None
) -> tuple[Path, tuple[str, str], tuple[Any, Any]]:
    """The demo repository (built here), the scenario's pair and the demo's test traffic."""
    from pipelines.serving.canary import demo as canary_demo

    if scenario not in canary_demo.SCENARIOS:
        fail(err, f"--scenario: choose one of {', '.join(canary_demo.SCENARIOS)}")
    with console.status("building the demo variants (seeded data, two small MLPs) ..."):
        slow = {} if delay_ms is None else {"delay_ms": delay_ms}
        demo = canary_demo.build_demo_repository(ABTEST_DEMO_REPOSITORY, **slow)
    return demo.root, demo.pair(scenario), (demo.data.test_x, demo.data.test_y)


def bench_table(report: Any) -> Table:
    """Throughput, latency percentiles, errors and server batching per configuration."""
    table = Table(title=bench_title(report), title_justify="left")
    for col in BENCH_COLUMNS:
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for r in report.results:
        cells: list[str | Text] = list(bench_cells(r))
        if r.errors:
            cells[BENCH_COLUMNS.index("errors")] = styled(str(r.errors), "red")
        table.add_row(*cells)
    return table


def bench_serve_command(
    model_repository: Annotated[
        Path | None,
        typer.Argument(help="Repository to serve; default: a seeded demo MLP (built here)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model to load (default: the only/first model).")
    ] = None,
    requests: Annotated[int, typer.Option(help="Requests per configuration.")] = 10_000,
    concurrency: Annotated[int, typer.Option(help="Concurrent tritonclient clients.")] = 8,
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
    max_seconds: Annotated[float, typer.Option(help="Bound on the benchmark's time.")] = 300.0,
    max_queue_delay_us: Annotated[
        int, typer.Option(help="Dynamic batcher delay when the config sets none.")
    ] = 100,
    out: Annotated[Path, typer.Option(help="JSON report.")] = BENCH_REPORT,
) -> None:
    """Load-test one model on the local Triton: batch 1 vs dynamic batching, in one run.

    Reports throughput, p50/p95/p99 latency and errors per configuration and writes OUT. Exits
    1 if any request failed or the time bound cut a run short.
    """
    from pipelines.serving import bench
    from pipelines.serving.load import PROTOCOLS

    console, err = consoles()
    if protocol not in PROTOCOLS or requests < 1 or concurrency < 1:
        fail(err, "--protocol must be grpc or http; --requests and --concurrency >= 1")
    model_repository, model = _bench_model(console, err, model_repository, model)
    with _serving(console, err, model_repository, [model], "load ...") as (server, status):
        report = bench.bench_serve(
            server.endpoints,
            model=model,
            requests=requests,
            concurrency=concurrency,
            protocol=protocol,
            max_seconds=max_seconds,
            max_queue_delay_us=max_queue_delay_us,
            out=out,
            restore=False,
            on_result=lambda r: status.update(f"{r.name} done; next ..."),
        )
    console.print(bench_table(report))
    env = report.environment
    console.print(
        f"{env['server']}, {env['client']}, {env['cpus']} CPUs; report: {shown_path(out)}"
    )
    for r in report.results:
        for sample in r.error_samples:
            err.print(f"{r.name}: {sample}", style="red", markup=False, highlight=False)
    if not report.ok:
        fail(err, "FAILED: errors or requests not completed within the time bound", EXIT_NEGATIVE)


def _bench_model(
    console: Console, err: Console, repository: Path | None, model: str | None
) -> tuple[Path, str]:
    """The repository and model to benchmark: the options', or the demo's trained MLP."""
    if repository is None:
        from pipelines.serving.canary import demo as canary_demo

        with console.status("building the demo model (seeded data, a small MLP) ..."):
            demo = canary_demo.build_demo_repository(BENCH_DEMO_REPOSITORY)
        return demo.root, demo.name("trained")
    if not repository.is_dir():
        fail(err, f"model repository not found: {repository}")
    if model is None:
        found = repository_models(repository)
        if not found:
            fail(err, f"{repository}: no model with a config.pbtxt")
        model = found[0]
    return repository, model


def bench_abtest_command(
    aa_runs: Annotated[int, typer.Option(help="A/A runs (the same model twice).")] = 20,
    ab_runs: Annotated[int, typer.Option(help="A/B runs (a slower candidate).")] = 10,
    delay_ms: Annotated[float, typer.Option(help="How much slower the A/B candidate is.")] = 30.0,
    background_load: Annotated[
        int | None,
        typer.Option(help="Busy processes loading the CPU meanwhile (default: one per core)."),
    ] = None,
    max_seconds: Annotated[float, typer.Option(help="Bound on each run's wall time.")] = 240.0,
    out: Annotated[Path | None, typer.Option(help="JSON report.")] = None,
) -> None:
    """Measure the canary's false rollbacks (A/A) and missed rollbacks (A/B) on the real Triton.

    Every run is a full `sovml abtest` on a fresh server while busy processes load the CPU;
    rates come with Clopper-Pearson and Wilson 95% intervals. Exits 1 when the A/A
    false-rollback interval lies wholly above the stated rate.
    """
    from pipelines.serving.canary import benchmark
    from pipelines.serving.canary.run import RunSettings

    console, err = consoles()
    if aa_runs < 0 or ab_runs < 0 or aa_runs + ab_runs == 0 or delay_ms <= 0:
        fail(err, "--aa-runs, --ab-runs: >= 0 and not both 0; --delay-ms > 0")
    report_path = out or benchmark.BENCH_ABTEST_REPORT
    with console.status("A/A run 1 ...") as status:

        def on_run(r: Any) -> None:
            status.update(f"{r.experiment} run {r.index + 1}: {r.decision}; next ...")

        report = benchmark.bench_abtest(
            aa_runs=aa_runs,
            ab_runs=ab_runs,
            delay_ms=delay_ms,
            load=background_load,
            settings=RunSettings(max_seconds=max_seconds),
            out=report_path,
            on_run=on_run,
        )
    table = Table(title="canary benchmark (95% intervals)", title_justify="left")
    for col in ("experiment", "runs", "promoted", "held", "rolled back", "rate", "C-P 95%"):
        table.add_column(col, justify="left" if col == "experiment" else "right")
    for exp in report.experiments:
        s = exp.summary()
        lo, hi = s["clopper_pearson_95"]
        table.add_row(
            f"{exp.name}: {exp.candidate} vs {exp.baseline} ({s['measures']})",
            str(s["runs"]),
            str(s["promoted"]),
            str(s["held"]),
            str(s["rolled_back"]),
            f"{s['hits']}/{s['runs']}",
            f"[{lo:.3f}, {hi:.3f}]",
        )
    console.print(table)
    console.print(
        f"{report.settings['background_load_processes']} busy processes; "
        f"{report.seconds:.0f}s; report: {shown_path(report_path)}"
    )
    if report.false_rollback_bound_violated:
        fail(err, "A/A false-rollback rate above the stated bound (interval)", EXIT_NEGATIVE)
