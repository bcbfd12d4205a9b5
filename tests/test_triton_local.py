"""The real Triton server (2.51.0, Python backend, from .venv-triton) over a local repository.

One server per module serves a seeded MLP written by ``pipelines.serving.repository`` twice: with
dynamic batching (``tiny``) and without batching at all (``tiny_nobatch``, ``max_batch_size``
0). Checked: readiness, the config and metadata Triton reports against what the repository says,
HTTP and gRPC inference against the TorchScript model run in this process (1e-5), the metrics
endpoint, a short concurrent load run with zero errors, and the ``sovml serve`` / ``sovml bench
serve`` commands. The pure parts (config rendering, metrics parsing, locating the binary) run
without the server. Skipped, with the reason, when ``.venv-triton`` is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from pipelines.serving import repository as serving_repo
from pipelines.serving.metrics import model_metrics, parse_prometheus
from pipelines.serving.repository import ModelConfig
from pipelines.serving.triton import (
    TritonServer,
    TritonStartError,
    TritonUnavailableError,
    find_triton,
    prepare_backends,
)
from tests.triton_helpers import require_triton, tiny_mlp

IN, OUT = "features__0", "probability__0"
DIM = 8


def _config(name: str, max_batch_size: int, dynamic: bool, **kwargs: Any) -> ModelConfig:
    """A Python-backend config serving ``model.pt`` with this module's tensors."""
    return ModelConfig(name, "python", IN, DIM, OUT, 1, max_batch_size, dynamic, 1, **kwargs)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("triton") / "model_repository"
    script = tiny_mlp(root.parent / "tiny.pt", seed=7, in_dim=DIM)
    parameters = serving_repo.python_parameters()
    batching = {"preferred_batch_sizes": (4, 8), "max_queue_delay_us": 200}
    tiny = _config("tiny", 8, True, parameters=parameters, **batching)
    serving_repo.write_local_repository(script, root, tiny)
    flat = _config("tiny_nobatch", 0, False, parameters=parameters)
    serving_repo.write_local_repository(script, root, flat)
    return root


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[TritonServer]:
    require_triton()
    with TritonServer(repo, ["tiny", "tiny_nobatch"], ready_timeout_s=120) as srv:
        yield srv


@pytest.fixture(scope="module")
def reference(repo: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rows and the TorchScript model's own output for them, computed in this process."""
    import torch

    rows = np.random.default_rng(3).normal(size=(5, DIM)).astype(np.float32)
    model = torch.jit.load(str(repo / "tiny" / "1" / "model.pt")).eval()
    with torch.inference_mode():
        expected = model(torch.from_numpy(rows)).numpy()
    return rows, expected


# --- without the server ------------------------------------------------------------------------
def test_config_rendering_and_validation() -> None:
    render = serving_repo.render_model_config
    params = serving_repo.python_parameters(delay_ms=5)
    text = render(ModelConfig("m", "python", "x", 4, "y", 2, 16, True, 2, parameters=params,
                              preferred_batch_sizes=(8,)))  # fmt: skip
    assert 'backend: "python"' in text and "max_batch_size: 16" in text
    assert "dims: [ 4 ]" in text and "dims: [ 2 ]" in text
    assert "preferred_batch_size: [ 8 ]" in text and "count: 2\n    kind: KIND_CPU" in text
    assert 'key: "DELAY_MS"\n  value: { string_value: "5.0" }' in text
    unbatched = render(ModelConfig("m", "python", "x", 4, "y", 2, 0, False, 1))
    assert "dims: [ -1, 4 ]" in unbatched and "dynamic_batching" not in unbatched
    with pytest.raises(ValueError, match="dynamic_batching needs"):
        ModelConfig("m", "python", "x", 4, "y", 2, 0, True, 1)
    with pytest.raises(ValueError, match="kind"):
        ModelConfig("m", "python", "x", 4, "y", 2, 8, True, 1, "KIND_TPU")
    with pytest.raises(ValueError, match="model_name"):
        ModelConfig("a/b", "python", "x", 4, "y", 2, 8, True, 1)
    with pytest.raises(ValueError, match="delay_ms"):
        serving_repo.python_parameters(delay_ms=-1)


def test_write_local_repository_layout(repo: Path) -> None:
    model_dir = repo / "tiny"
    assert (model_dir / "config.pbtxt").is_file()
    assert (model_dir / "1" / "model.pt").is_file()
    source = serving_repo.PYTHON_MODEL_SOURCE
    assert (model_dir / "1" / "model.py").read_text() == source.read_text()
    with pytest.raises(ValueError, match="version"):
        serving_repo.write_local_repository(
            model_dir / "1" / "model.pt", repo, _config("x", 8, True), version=0
        )


def test_prometheus_parsing() -> None:
    text = (
        "# HELP nv_inference_request_success Number of successful inference requests\n"
        "# TYPE nv_inference_request_success counter\n"
        'nv_inference_request_success{model="m",version="1"} 10\n'
        'nv_inference_request_failure{model="m",reason="BACKEND",version="1"} 1\n'
        'nv_inference_request_failure{model="m",reason="OTHER",version="1"} 2\n'
        'nv_inference_count{model="m",version="1"} 40\n'
        'nv_inference_exec_count{model="m",version="1"} 10\n'
        'nv_inference_request_duration_us{model="m",version="1"} 13000\n'
        'nv_inference_request_summary_us{model="m",version="1",quantile="0.99"} 2500\n'
        "nv_cpu_utilization 0.5\n"
    )
    samples = parse_prometheus(text)
    assert ("nv_cpu_utilization", {}, 0.5) in samples
    m = model_metrics(samples)["m"]
    assert (m.success, m.failure, m.requests) == (10, 3, 13)
    assert m.average_batch == 4 and m.mean_request_us == 1000
    assert m.quantile_us(0.99) == 2500 and np.isnan(m.quantile_us(0.5))


def test_settled_scrape_waits_out_a_half_counted_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton bumps ``nv_inference_count`` before ``nv_inference_exec_count``: a scrape in that gap
    must not be the reading a delta is taken from."""
    from pipelines.serving import metrics as serving_metrics
    from pipelines.serving.metrics import ModelMetrics

    readings = iter(
        [
            ModelMetrics(inferences=300, executions=299),  # half-counted
            ModelMetrics(inferences=300, executions=300),
            ModelMetrics(inferences=300, executions=300),
        ]
    )
    monkeypatch.setattr(serving_metrics, "scrape", lambda url, timeout_s=5.0: {"m": next(readings)})
    settled = serving_metrics.settled_scrape("http://unused", "m", interval_s=0.0)
    assert (settled.inferences, settled.executions) == (300, 300)


def test_missing_venv_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TritonUnavailableError, match=r"make \.venv-triton/\.stamp"):
        find_triton(tmp_path / "no-such-venv")


def test_backend_folder_is_prepared_idempotently(tmp_path: Path) -> None:
    inst = require_triton()
    first = prepare_backends(inst, tmp_path / "backends")
    stub = first / "python" / "triton_python_backend_stub"
    mtime = stub.stat().st_mtime_ns
    assert prepare_backends(inst, tmp_path / "backends") == first
    assert stub.stat().st_mtime_ns == mtime, "a prepared folder is reused, not rebuilt"
    assert (first / "python" / "libtriton_python.so").is_file()


# --- the real server ---------------------------------------------------------------------------
@pytest.mark.slow
def test_server_and_models_ready(server: TritonServer) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("tiny") and client.is_model_ready("tiny_nobatch")
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert index["tiny"]["state"] == "READY" and index["tiny"]["version"] == "1"
        assert client.get_server_metadata()["version"] == "2.51.0"
    finally:
        client.close()
    assert all(
        addr.startswith("127.0.0.1:") for addr in (server.http_url, server.grpc_url)
    ) and server.metrics_url.startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_serving_leaves_the_repository_as_it_was(server: TritonServer, repo: Path) -> None:
    """The server reads a private copy: the Python backend's bytecode lands there, never in the
    artifact, whose digest the lifecycle log recorded."""
    staged = server.served_repository
    assert staged is not None and staged != repo and staged.is_dir()
    assert [str(p) for p in repo.rglob("__pycache__")] == []
    assert list(staged.rglob("__pycache__"))  # the stub did write its cache, in the copy
    assert (staged / "tiny" / "1" / "model.pt").read_bytes() == (
        repo / "tiny" / "1" / "model.pt"
    ).read_bytes()


def test_a_stopped_server_removes_its_copy(repo: Path) -> None:
    require_triton()
    with TritonServer(repo, ["tiny"], ready_timeout_s=120) as srv:
        staged = srv.served_repository
        assert staged is not None and (staged / "tiny" / "config.pbtxt").is_file()
    assert srv.served_repository is None and not staged.exists()


@pytest.mark.slow
def test_model_config_is_the_repositorys(server: TritonServer) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    try:
        cfg = client.get_model_config("tiny")
        flat = client.get_model_config("tiny_nobatch")
    finally:
        client.close()
    assert cfg["name"] == "tiny" and cfg["backend"] == "python"
    assert cfg["max_batch_size"] == 8
    assert [(t["name"], t["data_type"], t["dims"]) for t in cfg["input"]] == [
        (IN, "TYPE_FP32", [DIM])
    ]
    assert [(t["name"], t["data_type"], t["dims"]) for t in cfg["output"]] == [
        (OUT, "TYPE_FP32", [1])
    ]
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert int(cfg["dynamic_batching"]["max_queue_delay_microseconds"]) == 200
    assert [(g["count"], g["kind"]) for g in cfg["instance_group"]] == [(1, "KIND_CPU")]
    assert cfg["parameters"]["TORCHSCRIPT_FILE"]["string_value"] == "model.pt"
    assert flat["max_batch_size"] == 0 and "dynamic_batching" not in flat
    assert flat["input"][0]["dims"] == [-1, DIM]


@pytest.mark.slow
def test_model_metadata(server: TritonServer) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        meta = client.get_model_metadata("tiny", as_json=True)
    finally:
        client.close()
    assert meta["name"] == "tiny" and meta["versions"] == ["1"]
    assert meta["platform"] == "python"
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        (IN, "FP32", ["-1", str(DIM)])
    ]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [
        (OUT, "FP32", ["-1", "1"])
    ]


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", ["tiny", "tiny_nobatch"])
def test_inference_matches_torchscript(
    server: TritonServer, reference: tuple[np.ndarray, np.ndarray], protocol: str, model: str
) -> None:
    from pipelines.serving.load import InferClients

    rows, expected = reference
    url = server.http_url if protocol == "http" else server.grpc_url
    with InferClients(protocol, url, 1, IN, OUT) as clients:
        batch = clients.infer(0, model, rows)
        single = np.concatenate([clients.infer(0, model, r[None, :]) for r in rows])
    assert batch.shape == expected.shape == (len(rows), 1)
    np.testing.assert_allclose(batch, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(single, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_short_load_run_has_no_errors(server: TritonServer, tmp_path: Path) -> None:
    from pipelines.serving.bench import bench_serve

    out = tmp_path / "serve.json"
    report = bench_serve(
        server.endpoints,
        model="tiny",
        requests=2000,
        concurrency=8,
        max_seconds=60,
        configurations=("dynamic",),
        out=out,
        restore=False,
    )
    (result,) = report.results
    assert result.completed == 2000 and result.errors == 0, result.error_samples
    assert result.server["requests"] == 2000, "Triton counted every request"
    assert result.server["average_batch"] >= 1.0
    assert result.throughput_rps > 0 and result.latency_ms["p50"] <= result.latency_ms["p99"]
    saved = json.loads(out.read_text())
    assert saved["ok"] is True and saved["results"][0]["errors"] == 0


@pytest.mark.slow
def test_bad_model_fails_with_the_log_tail(tmp_path: Path) -> None:
    require_triton()
    bad = tmp_path / "bad_repo"
    (bad / "broken" / "1").mkdir(parents=True)
    (bad / "broken" / "config.pbtxt").write_text('name: "broken"\nbackend: "no_such_backend"\n')
    with pytest.raises(TritonStartError) as info:
        TritonServer(bad, ["broken"], ready_timeout_s=60).start()
    assert "server log" in str(info.value) and "broken" in str(info.value)


def _app() -> typer.Typer:
    # The registration infra/cli/app.py uses (see infra/cli/serve.py's docstring).
    from infra.cli.serve import abtest_command, bench_serve_command, serve_command

    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("serve")(serve_command)
    app.command("abtest")(abtest_command)
    bench = typer.Typer()
    bench.command("serve")(bench_serve_command)
    app.add_typer(bench, name="bench")
    return app


@pytest.mark.slow
def test_serve_command_once(repo: Path) -> None:
    require_triton()
    # A fixed, wide terminal: the table must not truncate depending on the temporary path's
    # length (longer under pytest-xdist) or the caller's tty.
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        _app(), ["serve", str(repo), "--model", "tiny", "--once"]
    )
    assert result.exit_code == 0, result.output
    for text in (
        "Triton ready",
        "HTTP/REST",
        "gRPC",
        "/metrics",
        "tiny",
        "READY",
        "dynamic batching on",
        "1 x KIND_CPU",
        IN,
    ):
        assert text in result.output


@pytest.mark.slow
def test_serve_verify_checks_parity_and_catches_a_mismatch(repo: Path, tmp_path: Path) -> None:
    require_triton()
    good = CliRunner().invoke(_app(), ["serve", str(repo), "--once", "--verify"])
    assert good.exit_code == 0, good.output
    assert "inference parity" in good.output and good.output.count("yes") == 4
    # A server that answers with another model than the version's model.pt must fail --verify.
    bad = tmp_path / "bad_repository"
    config = _config("m", 8, True, parameters=serving_repo.python_parameters())
    serving_repo.write_local_repository(
        tiny_mlp(tmp_path / "a.pt", seed=1, in_dim=DIM), bad, config
    )
    tiny_mlp(bad / "m" / "1" / "other.pt", seed=2, in_dim=DIM)
    config = bad / "m" / "config.pbtxt"
    config.write_text(config.read_text().replace('"model.pt"', '"other.pt"'))
    result = CliRunner().invoke(_app(), ["serve", str(bad), "--once", "--verify"])
    assert result.exit_code == 1, result.output
    assert "NO" in result.output


@pytest.mark.slow
def test_serve_exits_3_with_one_error_line_and_the_log_tail_when_triton_fails(
    tmp_path: Path,
) -> None:
    """A server that cannot start is an environment error (3), not a negative result (1)."""
    require_triton()
    bad = tmp_path / "bad_repo"
    (bad / "broken" / "1").mkdir(parents=True)
    (bad / "broken" / "config.pbtxt").write_text('name: "broken"\nbackend: "no_such_backend"\n')
    result = CliRunner().invoke(_app(), ["serve", str(bad), "--once", "--ready-timeout", "60"])
    assert result.exit_code == 3, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: tritonserver exited (code ")
    assert errors[0].endswith("before it was ready (server log tail below)")
    assert "no_such_backend" in result.output  # the tail, after the error line


def test_serve_command_bad_repository(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["serve", str(tmp_path / "missing"), "--once"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_bench_serve_command_runs_both_configurations(repo: Path, tmp_path: Path) -> None:
    require_triton()
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "serve",
        str(repo),
        "--model",
        "tiny",
        "--requests",
        "300",
        "--concurrency",
        "4",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    by_name = {r["name"]: r for r in report["results"]}
    assert set(by_name) == {"batch1", "dynamic"}
    assert all(r["errors"] == 0 and r["completed"] == 300 for r in by_name.values())
    assert by_name["batch1"]["server"]["average_batch"] == 1.0
    assert by_name["batch1"]["dynamic_batching"] is False
