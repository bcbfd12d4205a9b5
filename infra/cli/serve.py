"""``sovml serve``, ``sovml abtest``, ``sovml bench serve``: the real Triton server, locally.

Registered in ``infra/cli/app.py``::

    from infra.cli.serve import abtest_command, bench_serve_command, serve_command

    app.command("serve")(serve_command)
    app.command("abtest")(abtest_command)
    bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
    bench_app.command("serve")(bench_serve_command)
    app.add_typer(bench_app, name="bench")

The server is Triton 2.51.0 from the ``nvidia-pytriton`` wheel in ``.venv-triton``
(:mod:`pipelines.serving.triton`), bound to 127.0.0.1 on free ports.

Exit codes as in ``infra/cli/app.py``: 0 success, 1 the run failed (server did not start, a load
run had errors, or with ``--fail-on-rollback`` a canary that was not promoted), 2 bad input.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
VERIFY_ATOL = 1e-5
"""Largest difference ``sovml serve --verify`` accepts between Triton and in-process scores."""
ROOT = Path(__file__).resolve().parents[2]
DEMO_ABTEST_REPO = ROOT / "build" / "abtest" / "demo_repository"
DEMO_BENCH_REPO = ROOT / "build" / "bench" / "serve_repository"


def _consoles() -> tuple[Console, Console]:
    console = Console()
    if not console.is_terminal:
        # Logs and CI capture: rich would squeeze wide tables to 80 columns and elide cells.
        console = Console(width=140)
    return console, Console(stderr=True)


def _start(err: Console, repository: Path, models: list[str], **kwargs: Any) -> Any:
    """A started TritonServer, or a clean exit with the reason (and the server log's tail)."""
    from pipelines.serving.triton import TritonServer, TritonStartError, TritonUnavailableError

    try:
        server = TritonServer(repository, models, **kwargs)
    except FileNotFoundError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except TritonUnavailableError as exc:
        err.print(f"[red]Triton is not available: {escape(str(exc))}[/]")
        raise typer.Exit(EXIT_FAILED) from None
    try:
        return server.start()
    except TritonStartError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(EXIT_FAILED) from None


def repository_models(repository: Path) -> list[str]:
    """Model folders of a repository (those with a ``config.pbtxt``), sorted."""
    return sorted(p.name for p in repository.iterdir() if (p / "config.pbtxt").is_file())


def config_summary(config: dict[str, Any]) -> str:
    """One line per setting that matters for serving: backend, batching, instances, versions."""
    backend = config.get("backend") or config.get("platform") or "?"
    batching = config.get("dynamic_batching")
    if batching:
        pref = batching.get("preferred_batch_size") or []
        delay = batching.get("max_queue_delay_microseconds", 0)
        dyn = f"on (max queue delay {delay} us" + (f", preferred {pref})" if pref else ")")
    else:
        dyn = "off"
    groups = ", ".join(
        f"{g.get('count', 1)} x {g.get('kind', '?')}" for g in config.get("instance_group", [])
    )
    policy = config.get("version_policy", {})
    params = {k: v.get("string_value") for k, v in (config.get("parameters") or {}).items()}
    lines = [
        f"backend {backend}, max_batch_size {config.get('max_batch_size', 0)}",
        f"dynamic batching {dyn}",
        f"instances {groups or '-'}",
        f"version policy {policy or '-'}",
    ]
    if params:
        lines.append("parameters " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
    return "\n".join(lines)


def _tensors(items: list[dict[str, Any]]) -> str:
    return "\n".join(f"{t['name']} {t['datatype']} {t['shape']}" for t in items)


def _print_server(console: Console, server: Any, models: list[str], seconds: float) -> None:
    import tritonclient.http as httpclient

    endpoints = Table(title=f"Triton ready in {seconds:.1f}s", title_justify="left")
    endpoints.add_column("endpoint")
    endpoints.add_column("address")
    endpoints.add_row("HTTP/REST (KServe v2)", f"http://{server.http_url}")
    endpoints.add_row("gRPC (KServe v2)", server.grpc_url)
    endpoints.add_row("Prometheus metrics", server.metrics_url)
    console.print(endpoints)
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        meta = client.get_server_metadata()
        console.print(
            f"server: {meta['name']} {meta['version']}, repository {server.model_repository}"
        )
        table = Table(title="models", title_justify="left", show_lines=True)
        for col in ("model", "versions", "inputs", "outputs", "config"):
            table.add_column(col, overflow="fold")
        for name in models:
            m = client.get_model_metadata(name)
            cfg = client.get_model_config(name)
            table.add_row(
                f"[green]{escape(name)}[/] READY",
                ", ".join(m.get("versions", [])),
                escape(_tensors(m.get("inputs", []))),
                escape(_tensors(m.get("outputs", []))),
                escape(config_summary(cfg)),
            )
        console.print(table)
    finally:
        client.close()


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
    """
    console, err = _consoles()
    if not model_repository.is_dir():
        err.print(f"[red]model repository not found: {escape(str(model_repository))}[/]")
        raise typer.Exit(EXIT_BAD_INPUT)
    models = list(model or repository_models(model_repository))
    if not models:
        err.print(f"[red]{escape(str(model_repository))}: no model folder with a config.pbtxt[/]")
        raise typer.Exit(EXIT_BAD_INPUT)
    # Ctrl-C and a plain `kill` both end in the `finally` below, which stops the server: SIGINT
    # may be ignored when started in the background, and SIGTERM would otherwise skip cleanup.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    with console.status(f"starting Triton with {', '.join(models)} ..."):
        server = _start(
            err, model_repository, models, ready_timeout_s=ready_timeout, log_path=log_file
        )
    try:
        _print_server(console, server, models, time.monotonic() - started)
        if verify and not _verify(console, server, model_repository, models):
            raise typer.Exit(EXIT_FAILED)
        if once:
            return
        console.print("serving; Ctrl-C to stop")
        while server.running:
            time.sleep(0.5)
        err.print(f"[red]tritonserver exited unexpectedly[/]\n{escape(server.log_tail())}")
        raise typer.Exit(EXIT_FAILED)
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        server.stop()


def parity_rows(config: dict[str, Any], rows: int = 16, seed: int = 0) -> Any:
    """Seeded FP32 rows shaped for the model's single input (variable dims taken as 1)."""
    import numpy as np

    dims = [int(d) for d in config["input"][0]["dims"]]
    max_batch = int(config.get("max_batch_size", 0))
    if max_batch == 0:
        dims = dims[1:]  # the explicit batch dimension of a non-batching model
    else:
        rows = min(rows, max_batch)  # Triton rejects a request above max_batch_size
    width = [d if d > 0 else 1 for d in dims]
    return np.random.default_rng(seed).normal(size=(rows, *width)).astype(np.float32)


def _verify(console: Console, server: Any, repository: Path, models: list[str]) -> bool:
    """Triton's answers over HTTP and gRPC against the TorchScript file run in-process."""
    import numpy as np
    import torch
    import tritonclient.http as httpclient

    from pipelines.serving.load import InferClients

    table = Table(title="inference parity (Triton vs in-process TorchScript)", title_justify="left")
    for col in ("model", "version", "protocol", "rows", "max |diff|", f"<= {VERIFY_ATOL:g}"):
        table.add_column(col, justify="left" if col in ("model", "protocol") else "right")
    ok = True
    meta_client = httpclient.InferenceServerClient(server.http_url)
    try:
        for name in models:
            cfg = meta_client.get_model_config(name)
            version = max(meta_client.get_model_metadata(name)["versions"], key=int)
            rows = parity_rows(cfg)
            path = repository / name / version / "model.pt"
            with torch.inference_mode():
                expected = torch.jit.load(str(path)).eval()(torch.from_numpy(rows)).numpy()
            for protocol in ("http", "grpc"):
                url = server.http_url if protocol == "http" else server.grpc_url
                out_name, in_name = cfg["output"][0]["name"], cfg["input"][0]["name"]
                with InferClients(protocol, url, 1, in_name, out_name) as clients:
                    got = clients.infer(0, name, rows)
                diff = float(np.max(np.abs(got.reshape(expected.shape) - expected)))
                good = diff <= VERIFY_ATOL
                ok &= good
                table.add_row(
                    name,
                    version,
                    protocol,
                    str(len(rows)),
                    f"{diff:.2e}",
                    "[green]yes[/]" if good else "[red]NO[/]",
                )
    finally:
        meta_client.close()
    console.print(table)
    return ok


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _acc(look: Any, name: str) -> str:
    lo, hi = look.accuracy_ci95[name]
    return f"{_fmt(look.accuracy[name], 3)} [{_fmt(lo, 3)}, {_fmt(hi, 3)}]"


_DECISION_STYLE = {
    "promote": "[green]promote[/]",
    "hold": "[yellow]hold[/]",
    "rollback": "[red]rollback[/]",
}


def look_table(result: Any) -> Table:
    """Per-look evidence: weight, requests, accuracy with CI, p99, errors, LLR, decision."""
    a, b = result.baseline, result.candidate
    table = Table(title=f"canary {escape(b)} (B) against {escape(a)} (A)", title_justify="left")
    for col in (
        "step",
        "weight",
        "req A/B",
        "mirror",
        "acc A [95% CI]",
        "acc B [95% CI]",
        "p99 A ms",
        "p99 B ms",
        "ratio",
        "err A/B",
        "LLR [rollback, promote]",
        "decision",
    ):
        table.add_column(col, justify="right" if col not in ("decision",) else "left")
    for look in result.looks:
        table.add_row(
            f"{look.step}.{look.look}",
            f"{look.weight:g}%",
            f"{look.requests[a]}/{look.requests[b]}",
            str(look.mirrored_requests),
            _acc(look, a),
            _acc(look, b),
            _fmt(look.p99_ms[a]),
            _fmt(look.p99_ms[b]),
            _fmt(look.p99_ratio),
            f"{look.errors[a]}/{look.errors[b] + look.mirrored_errors}",
            f"{_fmt(look.llr)} [{look.lower:.2f}, {look.upper:.2f}]",
            _DECISION_STYLE.get(look.decision, look.decision),
        )
    return table


def _load_labelled(path: Path) -> tuple[Any, Any]:
    import numpy as np

    with np.load(path) as data:
        keys = set(data.files)
        xk = next((k for k in ("features", "x", "X") if k in keys), None)
        yk = next((k for k in ("labels", "y") if k in keys), None)
        if xk is None or yk is None:
            raise ValueError(f"{path}: needs arrays 'features' (or 'x') and 'labels' (or 'y')")
        return data[xk], data[yk]


def abtest_command(
    scenario: Annotated[
        str,
        typer.Option(
            help="Demo: better, worse-accuracy or worse-latency (ignored with --baseline)."
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
    concurrency: Annotated[int, typer.Option(help="Concurrent client threads.")] = 4,
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
    seed: Annotated[int, typer.Option(help="Seeds the router and the traffic.")] = 0,
    max_requests: Annotated[int, typer.Option(help="Bound on all requests.")] = 100_000,
    max_seconds: Annotated[float, typer.Option(help="Bound on the analysis' wall time.")] = 180.0,
    mirror: Annotated[
        bool, typer.Option(help="Mirror baseline traffic to the candidate below 50%.")
    ] = True,
    delay_ms: Annotated[float, typer.Option(help="Demo: the slow variant's sleep.")] = 10.0,
    run: Annotated[str | None, typer.Option(help="Evidence name (build/abtest/RUN.json).")] = None,
    out_dir: Annotated[Path, typer.Option(help="Evidence folder.")] = ROOT / "build" / "abtest",
    fail_on_rollback: Annotated[
        bool, typer.Option(help="Exit 1 unless the candidate was promoted.")
    ] = False,
) -> None:
    """Canary a candidate against a baseline on the real Triton server: promote, hold, rollback.

    Without --baseline/--candidate a demo repository is built (seeded data, a trained model, one
    trained on shuffled labels, one that sleeps) and SCENARIO picks the pair. Decisions follow
    policies/promotion.py; the procedure and its error rates are printed and stored with the
    evidence.
    """
    from pipelines.serving import canary as abtest
    from policies.promotion import DEFAULT

    console, err = _consoles()
    if protocol not in ("grpc", "http") or concurrency < 1 or max_requests < 1:
        err.print("[red]--protocol must be grpc or http; --concurrency, --max-requests >= 1[/]")
        raise typer.Exit(EXIT_BAD_INPUT)
    custom = (model_repository, baseline, candidate, data)
    if any(v is not None for v in custom):
        if any(v is None for v in custom):
            err.print("[red]--model-repository, --baseline, --candidate and --data go together[/]")
            raise typer.Exit(EXIT_BAD_INPUT)
        try:
            features, labels = _load_labelled(data)  # type: ignore[arg-type]
        except (OSError, ValueError) as exc:
            err.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        repo_dir, pair = model_repository, (baseline, candidate)
    else:
        if scenario not in abtest.SCENARIOS:
            err.print(f"[red]--scenario: choose one of {', '.join(abtest.SCENARIOS)}[/]")
            raise typer.Exit(EXIT_BAD_INPUT)
        with console.status("building the demo variants (seeded data, two small MLPs) ..."):
            demo = abtest.build_demo_repository(DEMO_ABTEST_REPO, delay_ms=delay_ms)
        repo_dir, pair = demo.root, demo.pair(scenario)
        features, labels = demo.data.test_x, demo.data.test_y
    console.print(f"[bold]procedure[/]: {abtest.procedure_text(DEFAULT)}", soft_wrap=False)
    with console.status(f"starting Triton with {pair[0]} and {pair[1]} ..."):
        server = _start(err, repo_dir, list(pair))  # type: ignore[arg-type]
    try:
        status = console.status("step 1 ...")
        status.start()

        def on_look(look: Any) -> None:
            status.update(
                f"step {look.step} ({look.weight:g}%), look {look.look}: {look.decision} ..."
            )

        try:
            result = abtest.run_abtest(
                grpc_url=server.grpc_url,
                http_url=server.http_url,
                metrics_url=server.metrics_url,
                baseline=pair[0],
                candidate=pair[1],
                features=features,
                labels=labels,
                criteria=DEFAULT,
                concurrency=concurrency,
                protocol=protocol,
                seed=seed,
                max_requests=max_requests,
                max_seconds=max_seconds,
                mirror=mirror,
                run_name=run,
                out_dir=out_dir,
                on_look=on_look,
            )
        except ValueError as exc:
            err.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        finally:
            status.stop()
    finally:
        server.stop()
    console.print(look_table(result))
    style = {"promoted": "green", "rolled_back": "red", "held": "yellow"}[result.decision]
    console.print(
        f"decision: [{style}]{result.decision.upper()}[/] after {result.seconds:.1f}s, "
        f"{result.total_requests} requests: {escape(result.reason)}"
    )
    console.print(f"evidence: {_rel(Path(result.evidence_path))}")
    if fail_on_rollback and result.decision != "promoted":
        raise typer.Exit(EXIT_FAILED)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def bench_table(report: Any) -> Table:
    """Throughput, latency percentiles, errors and server batching per configuration."""
    table = Table(
        title=(
            f"{escape(report.model)}: {report.requests} requests x {report.concurrency} "
            f"{report.protocol} clients, batch-1 requests"
        ),
        title_justify="left",
    )
    for col in (
        "configuration",
        "done",
        "errors",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "avg server batch",
        "server ms",
        "queue ms",
    ):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for r in report.results:
        table.add_row(
            "dynamic batching" if r.dynamic_batching else "no batching (batch 1)",
            f"{r.completed}/{r.requests}",
            f"[red]{r.errors}[/]" if r.errors else "0",
            f"{r.throughput_rps:.0f}",
            _fmt(r.latency_ms["p50"]),
            _fmt(r.latency_ms["p95"]),
            _fmt(r.latency_ms["p99"]),
            _fmt(r.server["average_batch"]),
            _fmt(r.server["mean_request_ms"]),
            _fmt(r.server["mean_queue_ms"], 3),
        )
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
    out: Annotated[Path, typer.Option(help="JSON report.")] = ROOT
    / "build"
    / "bench"
    / "serve.json",
) -> None:
    """Load-test one model on the local Triton: batch 1 vs dynamic batching, in one run.

    Reports throughput, p50/p95/p99 latency and errors per configuration and writes OUT. Exits
    1 if any request failed or the time bound cut a run short.
    """
    from pipelines.serving import bench as bench_serve

    console, err = _consoles()
    if protocol not in ("grpc", "http") or requests < 1 or concurrency < 1:
        err.print("[red]--protocol must be grpc or http; --requests and --concurrency >= 1[/]")
        raise typer.Exit(EXIT_BAD_INPUT)
    if model_repository is None:
        from pipelines.serving import canary as abtest

        with console.status("building the demo model (seeded data, a small MLP) ..."):
            demo = abtest.build_demo_repository(DEMO_BENCH_REPO)
        model_repository, model = demo.root, demo.name("trained")
    if not model_repository.is_dir():
        err.print(f"[red]model repository not found: {escape(str(model_repository))}[/]")
        raise typer.Exit(EXIT_BAD_INPUT)
    if model is None:
        found = repository_models(model_repository)
        if not found:
            err.print(f"[red]{escape(str(model_repository))}: no model with a config.pbtxt[/]")
            raise typer.Exit(EXIT_BAD_INPUT)
        model = found[0]
    with console.status(f"starting Triton with {model} ..."):
        server = _start(err, model_repository, [model])
    try:
        status = console.status("load ...")
        status.start()
        try:
            report = bench_serve.bench_serve(
                http_url=server.http_url,
                grpc_url=server.grpc_url,
                metrics_url=server.metrics_url,
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
        except ValueError as exc:
            err.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        finally:
            status.stop()
    finally:
        server.stop()
    console.print(bench_table(report))
    console.print(
        f"{report.environment['server']}, {report.environment['client']}, "
        f"{report.environment['cpus']} CPUs; report: {_rel(out)}"
    )
    for r in report.results:
        for sample in r.error_samples:
            err.print(f"[red]{r.name}: {escape(sample)}[/]")
    if not report.ok:
        err.print("[red]FAILED: errors or requests not completed within the time bound[/]")
        raise typer.Exit(EXIT_FAILED)
