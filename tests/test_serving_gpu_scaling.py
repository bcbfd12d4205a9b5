"""GPU saturation scales within bounds: KEDA's DCGM trigger on GPU models, run on a real Prometheus.

Component tests under the recording mocks (a GPU model's ScaledObject has the request-rate and
the GPU-utilisation triggers, a CPU model only the request rate; the ceiling is the model's max
replicas cut to the GPU pool's max size), then the trigger's query on the real Prometheus
against DCGM-shaped series from a tiny local exporter, scraped the way the chart's
ServiceMonitor scrapes it (target labels ``namespace``/``pod``/``container`` of the exporter
itself, ``honor_labels`` as the release sets it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components._alerts import GPU_SATURATED_PERCENT, GPU_SCALE_PERCENT
from tests.component_mocks import ACCESS, KEY, of_type, record
from tests.prometheus import PrometheusServer, running_prometheus, scrape_job

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
HELM = "kubernetes:helm.sh/v3:Release"

GPUS = (
    # (Hostname, gpu, namespace, pod, container, utilisation): what dcgm-exporter writes when
    # the kubelet's pod-resources API maps a GPU to a pod.
    ("node-a", "0", "serving", "triton-credit-risk-7d9f8b6c5-abcde", "triton", 90.0),
    ("node-a", "1", "serving", "triton-credit-risk-7d9f8b6c5-fghij", "triton", 70.0),
    ("node-b", "0", "serving", "triton-credit-risk-v2-5c4b3a2d1-klmno", "triton", 40.0),
    ("node-b", "1", "serving", "triton-credit-8f7e6d5c4-pqrst", "triton", 55.0),
    # A tenant's training pod named like a server, and a GPU held by no pod.
    ("node-c", "0", "tenant-a", "triton-credit-risk-1a2b3c4d5-uvwxy", "trainer", 99.0),
    ("node-c", "1", "", "", "", 3.0),
)
EXPECTED = {"credit-risk": 160.0, "credit-risk-v2": 40.0, "credit": 55.0}
"""Summed utilisation per model: only that model's Triton pods in ``serving``."""


def _serving(**kw: Any) -> Any:
    from components.serving import ServedModel, Serving, ServingArgs

    args = dict(
        namespace="serving",
        models=[
            ServedModel("gpu-model", "gpu", min_replicas=2, max_replicas=6),
            ServedModel("cpu-model", "cpu", min_replicas=1, max_replicas=3),
        ],
        models_bucket="b", models_bucket_arn="arn:aws:s3:::b", storage_key_arn=KEY,
        cluster_access=ACCESS, puller_image="ghcr.io/sovereign-ml/model-puller:0.1.0",
        gpu_pool_max_size=4,
    )  # fmt: skip
    return Serving("serving", ServingArgs(**{**args, **kw}))


def _scaled(res: list[dict]) -> dict[str, dict]:
    return {
        so["inputs"]["spec"]["scaleTargetRef"]["name"]: so for so in of_type(res, SCALED_OBJECT)
    }


def test_a_gpu_model_scales_on_requests_and_gpu_utilisation_within_the_pool() -> None:
    from components.serving import gpu_util_query, request_rate_query

    res = record(_serving)
    scaled = _scaled(res)
    assert set(scaled) == {"triton-gpu-model"}, "only the GPU model gets a ScaledObject"
    so = scaled["triton-gpu-model"]
    spec = so["inputs"]["spec"]
    # Warm: KEDA holds the floor, never idles it; max 6 cut to the pool's 4 nodes.
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 4), so["urn"]
    assert "idleReplicaCount" not in spec and "cooldownPeriod" not in spec, so["urn"]
    rate, gpu = spec["triggers"]
    assert rate["metadata"]["query"] == request_rate_query("gpu-model"), so["urn"]
    assert gpu["type"] == "prometheus", so["urn"]
    meta = gpu["metadata"]
    assert meta["query"] == gpu_util_query("gpu-model", "serving"), so["urn"]
    assert meta["query"] == (
        'sum(DCGM_FI_DEV_GPU_UTIL{namespace="serving",'
        'pod=~"triton-gpu-model-[a-z0-9]+-[a-z0-9]+",container="triton"})'
    )
    assert meta["threshold"] == str(GPU_SCALE_PERCENT) == "80", so["urn"]
    assert GPU_SCALE_PERCENT < GPU_SATURATED_PERCENT
    assert (
        meta["serverAddress"] == "http://prometheus-kube-prometheus-prometheus.monitoring.svc:9090"
    )
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata is strings"
    # The CPU model keeps its HPA; KEDA owns the GPU model's (no second autoscaler on it).
    assert [h["inputs"]["spec"]["scaleTargetRef"]["name"] for h in of_type(res, HPA)] == [
        "triton-cpu-model"
    ]


def test_a_small_pool_or_a_high_max_bounds_the_ceiling_by_the_smaller() -> None:
    from components.serving import ServedModel

    model = ServedModel("g", "gpu", min_replicas=1, max_replicas=3)
    (so,) = of_type(record(lambda: _serving(models=[model], gpu_pool_max_size=8)), SCALED_OBJECT)
    assert so["inputs"]["spec"]["maxReplicaCount"] == 3, so["urn"]
    # A pool smaller than the floor (a one-node dev pool): the floor, which KEDA requires.
    floor = ServedModel("g", "gpu", min_replicas=2, max_replicas=6)
    (so,) = of_type(record(lambda: _serving(models=[floor], gpu_pool_max_size=1)), SCALED_OBJECT)
    assert so["inputs"]["spec"]["maxReplicaCount"] == 2, so["urn"]


def test_a_cpu_model_scaling_to_zero_has_only_the_request_trigger() -> None:
    from components.serving import ServedModel, request_rate_query

    model = ServedModel("c", "cpu", min_replicas=1, max_replicas=5, scale_to_zero=True)
    (so,) = of_type(record(lambda: _serving(models=[model])), SCALED_OBJECT)
    (trigger,) = so["inputs"]["spec"]["triggers"]
    assert trigger["metadata"]["query"] == request_rate_query("c"), so["urn"]
    assert "DCGM" not in str(so["inputs"]["spec"]), so["urn"]
    assert so["inputs"]["spec"]["maxReplicaCount"] == 5, so["urn"]


def test_a_gpu_model_scaling_to_zero_keeps_both_triggers_and_its_idle_window() -> None:
    from components.serving import ServedModel

    model = ServedModel("g", "gpu", min_replicas=1, max_replicas=6, scale_to_zero=True)
    (so,) = of_type(record(lambda: _serving(models=[model])), SCALED_OBJECT)
    spec = so["inputs"]["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 4), so["urn"]
    assert spec["cooldownPeriod"] == 15 * 60, so["urn"]
    rate, gpu = spec["triggers"]
    # Only the request rate wakes or holds the model: the GPU trigger activates at its target.
    assert (rate["metadata"]["activationThreshold"], gpu["metadata"]["activationThreshold"]) == (
        "0",
        "80",
    ), so["urn"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"gpu_pool_max_size": 0}, r"gpu_pool_max_size: 0; allowed >= 1 when a model uses the gpu"),
        ({"gpu_scale_percent": 95}, r"gpu_scale_percent: 95; allowed 1-94 \(below the GpuSat"),
        ({"gpu_scale_percent": 0}, r"gpu_scale_percent: 0; allowed 1-94"),
    ],
)
def test_serving_refuses_gpu_bounds_it_cannot_keep(kw: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _serving(**kw)


def test_prod_scales_its_gpu_models_within_the_pool_and_names_it_in_the_alert(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    record_ = stack_records["prod-uae"]
    cfg = record_["config"]
    (pool,) = [p for p in cfg["node_pools"] if p["gpu"]]
    gpu_models = [name for name, profile in cfg["served_models"] if profile == "gpu"]
    scaled = {
        r["inputs"]["spec"]["scaleTargetRef"]["name"]: r["inputs"]["spec"]
        for r in record_["resources"]
        if r["type"] == SCALED_OBJECT
    }
    assert gpu_models, "prod-uae serves a GPU model"
    for name in gpu_models:
        spec = scaled[f"triton-{name}"]
        assert spec["maxReplicaCount"] <= pool["max_size"], name
        assert any(
            "DCGM_FI_DEV_GPU_UTIL" in t["metadata"].get("query", "") for t in spec["triggers"]
        )
    releases = [r for r in record_["resources"] if r["type"] == HELM]
    assert any(_chart(r) == "keda" for r in releases), "KEDA is deployed"


def _chart(release: dict[str, Any]) -> str:
    """A Helm release's chart name, whether a repository's or an ``oci://`` reference (mirror)."""
    return str(release["inputs"].get("chart") or "").rsplit("/", 1)[-1]


def _dcgm_honor_labels(record_: dict[str, Any]) -> bool:
    """``serviceMonitor.honorLabels`` of the stack's dcgm-exporter release (chart default false)."""
    (dcgm,) = [
        r for r in record_["resources"] if r["type"] == HELM and _chart(r) == "dcgm-exporter"
    ]
    return bool(dcgm["inputs"]["values"]["serviceMonitor"].get("honorLabels", False))


class _Dcgm(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        lines = []
        for host, gpu, ns, pod, container, util in GPUS:
            labels = f'gpu="{gpu}",UUID="GPU-{host}-{gpu}",Hostname="{host}"'
            if pod:  # dcgm-exporter adds the pod labels only for a GPU a pod holds
                labels += f',namespace="{ns}",pod="{pod}",container="{container}"'
            lines.append(f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {util}")
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Quiet: the test output is pytest's."""


@pytest.fixture(scope="module")
def dcgm_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dcgm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _scrape(prom_target: str, honor: bool) -> dict[str, Any]:
    # The ServiceMonitor's target labels: the exporter's own pod in kube-system.
    job = scrape_job(
        "dcgm-exporter",
        [prom_target],
        labels={"namespace": "kube-system", "pod": "dcgm-exporter-x1y2z", "container": "exporter"},
    )
    job["honor_labels"] = honor
    return job


def _per_model(prom: PrometheusServer) -> dict[str, float]:
    from components.serving import gpu_util_query

    prom.wait_for_samples("DCGM_FI_DEV_GPU_UTIL", count=len(GPUS))
    return {
        model: sum(v for _, v in prom.query(gpu_util_query(model, "serving"))) for model in EXPECTED
    }


def test_the_trigger_query_sums_each_models_gpus_on_the_real_prometheus(
    dcgm_target: str, stack_records: dict[str, dict[str, Any]]
) -> None:
    honor = _dcgm_honor_labels(stack_records["prod-uae"])
    assert honor, "the release keeps the GPU's pod labels (honorLabels: true)"
    with running_prometheus([_scrape(dcgm_target, honor)]) as prom:
        assert _per_model(prom) == EXPECTED
        # 160 % over a target of 80 % per replica: KEDA's AverageValue asks for 2 replicas.
        from components.serving import gpu_util_query

        query = gpu_util_query("credit-risk", "serving")
        assert prom.query_value(f"ceil({query} / {GPU_SCALE_PERCENT})") == 2.0


def test_with_the_charts_default_honor_labels_the_query_would_see_nothing(
    dcgm_target: str,
) -> None:
    # Why the release sets honorLabels: the chart's default overwrites the GPU's pod labels
    # with the exporter's own (they survive only as exported_*), and every model reads zero.
    with running_prometheus([_scrape(dcgm_target, False)]) as prom:
        assert _per_model(prom) == {model: 0 for model in EXPECTED}
        assert prom.query_value('count(DCGM_FI_DEV_GPU_UTIL{exported_namespace="serving"})') == 4
