"""The cluster pipeline's exit task and the drift job against a local fake pushgateway.

The fake (:class:`FakePushgateway`) keeps one group per push URL, replaces it on ``PUT``, merges
by metric name on ``POST``, and serves every group on ``GET /metrics`` with the group's ``job``
and grouping labels added to each sample, as the real pushgateway does. It records every request.
"""

from __future__ import annotations

import http.server
import threading
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp.dsl import PipelineTaskFinalStatus

from kernels.drift import build_profile
from pipelines import pushgateway
from pipelines.monitoring import drift_job
from pipelines.training import outcome as runs
from pipelines.training import tasks
from pipelines.training.pipeline import PIPELINE_NAME

GROUP = f"/metrics/job/training-pipeline/pipeline/{PIPELINE_NAME}"


@dataclass
class FakePushgateway:
    """The state of the fake: groups by path, and every request as (method, path, body)."""

    url: str = ""
    groups: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    def exposed(self) -> str:
        """``GET /metrics``: each group's samples with its ``job`` and grouping labels."""
        lines = []
        for path, samples in self.groups.items():
            parts = path.split("/")[2:]  # job, <job>, label, value, ...
            extra = ",".join(f'{k}="{v}"' for k, v in zip(parts[::2], parts[1::2], strict=True))
            for line in samples:
                if "{" in line:
                    name, _, rest = line.partition("{")
                    labels, _, value = rest.rpartition("} ")
                else:
                    (name, value), labels = line.split(), ""
                merged = ",".join(x for x in (extra, *[y for y in labels.split(",") if y]) if x)
                lines.append(f"{name}{{{merged}}} {value}")
        return "\n".join(lines) + "\n"


def _name(sample: str) -> str:
    return sample.split("{")[0].split()[0]


def _samples(body: str) -> list[str]:
    return [line for line in body.splitlines() if line and not line.startswith("#")]


@pytest.fixture
def gateway() -> Iterator[FakePushgateway]:
    """A fake pushgateway on a free local port."""
    state = FakePushgateway()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _body(self) -> str:
            return self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()

        def do_PUT(self) -> None:
            body = self._body()
            state.requests.append(("PUT", self.path, body))
            state.groups[self.path] = _samples(body)
            self._reply(200, "")

        def do_POST(self) -> None:
            body = self._body()
            state.requests.append(("POST", self.path, body))
            new = _samples(body)
            names = {_name(line) for line in new}
            kept = [x for x in state.groups.get(self.path, []) if _name(x) not in names]
            state.groups[self.path] = kept + new
            self._reply(200, "")

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, ""))
            self._reply(200, state.exposed())

        def _reply(self, code: int, text: str) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(text.encode())))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _status(state: str) -> PipelineTaskFinalStatus:
    return PipelineTaskFinalStatus(
        state=state,
        pipeline_job_resource_name="runs/r1",
        pipeline_task_name="exit-handler-1",
        error_code=None if state != "FAILED" else 2,
        error_message=None if state != "FAILED" else "train failed",
    )


def test_exit_task_adds_each_run_to_the_pushed_counter(gateway: FakePushgateway) -> None:
    # Another group with the same metric must not leak into this pipeline's counts.
    gateway.groups["/metrics/job/training-pipeline/pipeline/other"] = [
        f'{runs.METRIC}{{outcome="failed"}} 7'
    ]
    assert tasks.outcome(PIPELINE_NAME, gateway.url, _status("SUCCEEDED")) == "succeeded"
    method, path, body = gateway.requests[-1]
    assert (method, path) == ("PUT", GROUP)
    assert f"# TYPE {runs.METRIC} counter" in body
    # Both series from the first run: increase() sees a later first failure.
    assert f'{runs.METRIC}{{pipeline="{PIPELINE_NAME}",outcome="succeeded"}} 1' in body
    assert f'{runs.METRIC}{{pipeline="{PIPELINE_NAME}",outcome="failed"}} 0' in body
    assert tasks.outcome(PIPELINE_NAME, gateway.url, _status("FAILED")) == "failed"
    # The KFP backend reports a succeeded body as ML Metadata's COMPLETE.
    assert tasks.outcome(PIPELINE_NAME, gateway.url, _status("COMPLETE")) == "succeeded"
    body = gateway.requests[-1][2]
    assert 'outcome="succeeded"} 2' in body and 'outcome="failed"} 1' in body
    assert [m for m, _p, _b in gateway.requests] == ["GET", "PUT"] * 3
    assert gateway.groups["/metrics/job/training-pipeline/pipeline/other"] == [
        f'{runs.METRIC}{{outcome="failed"}} 7'
    ]


def test_a_restarted_pushgateway_restarts_the_counter(gateway: FakePushgateway) -> None:
    tasks.outcome(PIPELINE_NAME, gateway.url, _status("FAILED"))
    tasks.outcome(PIPELINE_NAME, gateway.url, _status("FAILED"))
    gateway.groups.clear()  # no persistence: a restart forgets every group
    tasks.outcome(PIPELINE_NAME, gateway.url, _status("SUCCEEDED"))
    body = gateway.requests[-1][2]
    assert 'outcome="succeeded"} 1' in body and 'outcome="failed"} 0' in body


@pytest.mark.parametrize("state", ["CANCELLED", "CANCELED"])
def test_a_cancelled_run_is_not_counted(gateway: FakePushgateway, state: str) -> None:
    assert tasks.outcome(PIPELINE_NAME, gateway.url, _status(state)) == "not counted"
    assert gateway.requests == []


def test_an_unknown_state_fails_the_exit_task_without_pushing(gateway: FakePushgateway) -> None:
    with pytest.raises(ValueError, match="pipeline state: 'RUNNING'; expected one of SUCCEEDED"):
        tasks.outcome(PIPELINE_NAME, gateway.url, _status("RUNNING"))
    assert gateway.requests == []


def test_without_a_pushgateway_nothing_is_pushed() -> None:
    assert tasks.outcome(PIPELINE_NAME, "", _status("SUCCEEDED")) == "not counted"


def test_an_unreachable_pushgateway_fails_the_exit_task(gateway: FakePushgateway) -> None:
    down = gateway.url.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    with pytest.raises(urllib.error.URLError):
        tasks.outcome(PIPELINE_NAME, down, _status("SUCCEEDED"))


@pytest.mark.parametrize(
    ("job", "grouping", "message"),
    [
        ("drift", {"model": "a/b"}, "model: 'a/b'; allowed letters"),
        ("", {}, "job: ''; allowed letters"),
        ("drift", {"bad-label": "x"}, "grouping label: 'bad-label' is not a Prometheus label"),
    ],
)
def test_a_group_cannot_leave_its_url_segments(job: str, grouping: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pushgateway.group_url("http://gw:9091", job, grouping)


def test_post_merges_by_name_and_other_methods_are_refused(gateway: FakePushgateway) -> None:
    pushgateway.push(gateway.url, "j", None, "a 1\nb 2\n")
    pushgateway.push(gateway.url, "j", None, "b 3\n", method="POST")
    assert pushgateway.read_samples(gateway.url, "b") == [({"job": "j"}, 3.0)]
    assert pushgateway.read_samples(gateway.url, "a") == [({"job": "j"}, 1.0)]
    with pytest.raises(ValueError, match="method: 'DELETE'; allowed 'PUT', 'POST'"):
        pushgateway.push(gateway.url, "j", None, "", method="DELETE")


def test_the_drift_job_replaces_its_models_group(gateway: FakePushgateway, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    build_profile(rng.normal(size=(2000, 2)), ("income", "age")).save(tmp_path / "ref.npz")
    window = tmp_path / "window"
    window.mkdir()
    pd.DataFrame(rng.normal(size=(500, 2)), columns=["income", "age"]).to_parquet(
        window / "a.parquet"
    )
    drift_job.run(
        "credit-risk", str(tmp_path / "ref.npz"), str(window), 0.2, pushgateway=gateway.url
    )
    ((method, path, body),) = gateway.requests
    assert (method, path) == ("PUT", "/metrics/job/drift/model/credit-risk")
    assert 'sovml_drift_psi{model="credit-risk",feature="income"}' in body
