"""The demo's step list and the figures its summary table shows (the run itself is `make demo`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import typer

from infra.cli.app import app
from infra.demo import steps as demo


def _commands() -> set[str]:
    group = typer.main.get_command(app)
    return set(group.commands)  # type: ignore[attr-defined]


def test_every_step_runs_a_registered_sovml_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "DEMO", tmp_path)
    steps = demo.steps()
    titles = [s.title for s in steps]
    assert len(titles) == len(set(titles))
    known = _commands()
    for step in steps:
        command = step.command() if callable(step.command) else step.command
        if command[1:3] == ["-m", "infra.cli.app"]:
            assert command[3] in known, f"{step.title}: unknown command {command[3]!r}"
    # The serving steps are part of the showcase, after the pipeline that exports the model.
    order = [s.title.split(":")[0] for s in steps]
    assert order.index("canary") > titles.index(
        "training pipeline on kfp.local (ingest -> ... -> encrypt)"
    )


def test_exported_repository_is_the_newest_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "DEMO", tmp_path)
    old = tmp_path / "pipeline" / "run-1" / "model_repository_local"
    new = tmp_path / "pipeline" / "run-2" / "model_repository_local"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    os.utime(old, (1, 1))
    assert demo.exported_repository() == str(new)


def test_parity_figure_counts_passed_rows() -> None:
    out = "\n".join(
        [
            "│ credit_risk │ 1 │ http │ 16 │ 1.2e-07 │ yes │",
            "│ credit_risk │ 1 │ grpc │ 16 │ 3.0e-03 │ NO │",
        ]
    )
    proc = subprocess.CompletedProcess([], 0, stdout=out, stderr="")
    assert "(1/2 <= 1e-5)" in demo.parity_figure(proc)


def test_load_figure_reads_the_bench_report(tmp_path: Path) -> None:
    report = tmp_path / "serve.json"
    result = {
        "name": "dynamic",
        "completed": 10000,
        "errors": 0,
        "throughput_rps": 1360.4,
        "latency_ms": {"p99": 16.8},
    }
    report.write_text(json.dumps({"results": [result]}))
    assert demo.load_figure(report) == "dynamic: 10000 req, 0 errors, 1360 req/s, p99 16.8 ms"
    assert demo.load_figure(tmp_path / "missing.json") == ""
