"""Shared pytest fixtures and options."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """The collector settings of the fleet's workers (``infra.synth.batch_gc``): each worker of
    the suite synthesizes stack after stack as they do."""
    from infra.synth import batch_gc

    batch_gc.start()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported (the SDKs, the program) out of later full collections."""
    from infra.synth import batch_gc

    batch_gc.settle()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite golden files from the current output instead of comparing.",
    )


SHARED_UNITS = {
    # The session's one real training run (:func:`training_run`, about 40 s here).
    "tests/test_training_pipeline.py": "shared-training-run",
    "tests/test_privacy_pipeline.py": "shared-training-run",
    "tests/test_model_registry.py": "shared-training-run",
    # Triton's traffic measured by a real Prometheus (:func:`traffic`, about 45 s here).
    "tests/test_prometheus_analysis.py": "shared-triton-traffic",
    "tests/test_dashboards.py": "shared-triton-traffic",
}
"""Modules that read one expensive session fixture: one xdist worker runs each group, so the
fixture is built once, not once per worker."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole modules per worker (``--dist loadfile``), each :data:`SHARED_UNITS` group as one unit.

    xdist's ``xdist_group`` mark did not hold those modules together with pytest 9.2 and xdist
    3.8 (the Makefile says so), so the unit is made here, where the scheduler forms them.
    """
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_UNITS.get(module, module)

        def _assign_work_unit(self, node: Any) -> None:
            # The queue is complete before its first unit is handed out: ordered once, there.
            if not self.ordered:
                self.ordered = True
                units = list(self.workqueue.items())
                rank = {unit: i for i, unit in enumerate(FIRST_UNITS)}
                units.sort(key=lambda item: rank.get(item[0], len(rank)))  # stable: xdist's rest
                self.workqueue.clear()
                self.workqueue.update(units)
            super()._assign_work_unit(node)

    return SharedFixtureScheduling(config, log)


FIRST_UNITS = (
    # Latency-sensitive: first, beside test_mutations (one busy core) and test_triton_local (its
    # servers mostly wait), never beside the fleet gate's process pools, which load both cores.
    "tests/test_abtest.py",  # 89 s
    "tests/test_mutations.py",  # 96 s
    "tests/test_triton_local.py",  # 54 s
    "shared-training-run",  # 96 s
    "tests/test_fleet_gate.py",  # 73 s
    "tests/test_prometheus_rules.py",  # 52 s
    "shared-triton-traffic",  # 50 s
    "tests/test_training_fairness.py",  # 43 s
    "tests/test_training_compiled.py",  # 35 s
    "tests/test_synth_process.py",  # 32 s
    "tests/test_audit_recorder.py",  # 31 s
    "tests/test_abtest_stats.py",  # 28 s
    "tests/test_k8s_isolation.py",  # 23 s
)
"""Units handed out first, longest first (seconds of one worker, measured on this 2-core machine
from the workers' finish times in the sixth session; the mutation and promtool modules have been
made cheaper since, so their seconds are high). xdist's own order (most tests first) left the
long, few-test modules for last: one worker ran test_abtest.py alone for the last ~50 s of the
suite. Only the order depends on this list: a stale entry costs balance, never a test."""


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


@pytest.fixture(scope="session", autouse=True)
def _cli_built_once() -> Iterator[None]:
    """typer's ``CliRunner.invoke`` rebuilds the click command tree from the Typer app on every
    call (about 0.19 s for ``sovml``, more than most commands take under test); a real ``sovml``
    process builds it once, and so do the tests now: one tree per app object, for as long as the
    app lives. Apps are complete when first invoked (built at import, or just before use)."""
    import weakref

    import typer.testing

    build = typer.testing._get_command
    built: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def get_command(app: Any) -> Any:
        if app not in built:
            built[app] = build(app)
        return built[app]

    typer.testing._get_command = get_command
    yield
    typer.testing._get_command = build


TRAINING_ARGS = {"rows": 2000, "seed": 7, "epochs": 3, "min_auc": 0.7}
"""The one real local training run the session shares (small table, three epochs)."""


@pytest.fixture(scope="session")
def training_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Output folder (runs, cache, registry, keys) of the session's local pipeline runs."""
    return tmp_path_factory.mktemp("pipelines")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real MLflow tracking server (``.venv-mlflow``), once per session, on a free loopback
    port with its SQLite store and artifacts in a temporary folder; its URL.

    While it runs, ``SOVML_TRACKING_URI`` points at it, so pipeline runs and ``sovml model``
    commands in the session log there instead of starting a server of their own. Skips when
    ``.venv-mlflow`` is missing, unless ``SOVML_REQUIRE_SERVERS=1`` (CI) makes that a failure.
    """
    import os

    from pipelines.registry.server import MLFLOW_BIN, TRACKING_ENV, embedded_server

    if not MLFLOW_BIN.is_file():
        if os.environ.get("SOVML_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{MLFLOW_BIN} missing: run make setup")
        pytest.skip(f"{MLFLOW_BIN} missing: run make setup")
    old = os.environ.get(TRACKING_ENV)
    with embedded_server(tmp_path_factory.mktemp("mlflow")) as url:
        os.environ[TRACKING_ENV] = url
        try:
            yield url
        finally:
            if old is None:
                os.environ.pop(TRACKING_ENV, None)
            else:
                os.environ[TRACKING_ENV] = old


@pytest.fixture(scope="session")
def training_run(training_workdir: Path, mlflow_server: str) -> Any:
    """One full local run of the training pipeline (kfp.local), shared by every test that reads
    a run's outputs: it takes about two minutes here, so it runs once per session. It logs to
    the session's MLflow server and registers its version there."""
    from pipelines.training import local_run

    return local_run.run_local(dict(TRAINING_ARGS), training_workdir, tracking_uri=mlflow_server)


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
