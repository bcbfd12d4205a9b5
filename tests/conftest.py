"""Shared pytest fixtures and options."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite golden files from the current output instead of comparing.",
    )


@pytest.fixture(scope="session", autouse=True)
def _lifecycle_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Events the tests' commands record go to a session log, never the project's build/audit.

    A test that checks the log sets ``SOVML_AUDIT_LOG`` to its own file (monkeypatch).
    """
    import os

    path = tmp_path_factory.mktemp("audit") / "lifecycle.jsonl"
    old = {name: os.environ.get(name) for name in ("SOVML_AUDIT_LOG", "SOVML_AUDIT_BUCKET")}
    os.environ["SOVML_AUDIT_LOG"] = str(path)
    os.environ.pop("SOVML_AUDIT_BUCKET", None)
    yield path
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden files."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def stack_records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every stack in stacks/ synthesized once per session (about 4 s each), by stack name.

    Shared read-only by the modules that judge the records (program, bridge, Prometheus rules
    and analysis); a test that needs to change a record copies it first.
    """
    from infra.config.stackfile import list_stacks
    from infra.synth.runner import synthesize

    out = tmp_path_factory.mktemp("stack_records")
    return {s: synthesize(s, build_dir=out).record for s in list_stacks()}


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``sovml synth`` and ``check`` write under a temporary build folder instead of build/."""
    from infra.cli import stacks as stacks_cli
    from infra.gate import run as gate_run
    from infra.synth import runner as synth_runner

    out = tmp_path / "build"
    monkeypatch.setattr(
        stacks_cli, "synthesize", functools.partial(synth_runner.synthesize, build_dir=out)
    )
    monkeypatch.setattr(gate_run, "run_gate", functools.partial(gate_run.run_gate, build_dir=out))
    # `check` runs the fleet gate, which reads the build folder from the CLI module when called.
    monkeypatch.setattr(stacks_cli, "BUILD", out)
    return out


@pytest.fixture(scope="session")
def traffic(
    tmp_path_factory: pytest.TempPathFactory, stack_records: dict[str, dict[str, Any]]
) -> Iterator[Any]:
    """One real Triton and Prometheus with the analysis traffic sent and measured
    (:func:`tests.triton_traffic.observed_traffic`), shared by the analysis and dashboard tests:
    starting them and sending the traffic takes most of a minute."""
    from tests.triton_traffic import STACK, observed_traffic

    with observed_traffic(tmp_path_factory.mktemp("analysis"), stack_records[STACK]) as observed:
        yield observed
