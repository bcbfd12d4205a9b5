"""NVIDIA Triton serving per model with progressive delivery decided from live metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._alerts import GPU_SATURATED_PERCENT, GPU_SCALE_PERCENT
from components._aws import TYPE_PREFIX, child, region_of
from components._canary import (
    analysis_spec,
    analysis_template,
    canary_strategy,
    gpu_util_query,
    request_rate_query,
)
from components._irsa import ClusterAccess, bucket_policy, irsa_service_account
from components._k8s import (
    chart_container_security,
    container,
    cpu_hpa_spec,
    helm_release,
    metadata,
    pod_spec,
    pool_selector,
    runtime_default,
)
from components.monitoring import PROMETHEUS_URL
from policies import inventory
from policies.promotion import DEFAULT, PromotionCriteria, triton_metrics_args

TRITON_IMAGE = inventory.image("triton")
ROLLOUTS_CHART = inventory.chart("argo-rollouts")
PROFILES = ("gpu", "cpu")
PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
VARIANTS = ("stable", "canary")
"""The Rollout's two Services; pods carry their variant as the ``sovereign-ml/variant`` label."""


@dataclass(frozen=True)
class ServedModel:
    """One model served by Triton."""

    name: str
    """Model name in the repository and in Triton (``credit-risk``)."""
    profile: str = "gpu"
    """``gpu`` (one GPU per replica, GPU nodes) or ``cpu`` (worker pool)."""
    min_replicas: int = 2
    """Replica floor while serving (with ``scale_to_zero``, the floor once woken)."""
    max_replicas: int = 6
    """Replica ceiling."""
    scale_to_zero: bool = False
    """Let KEDA take the model to zero replicas after ``idle_minutes`` without requests."""
    idle_minutes: int = 15
    """Request-free minutes before a scale-to-zero model goes to zero (KEDA cooldown)."""
    target_rps: int = 50
    """Requests per second one replica carries before KEDA adds another (KEDA-scaled models:
    scale-to-zero or gpu profile)."""
    warm_start_cron: str = ""
    """Cron expression (``timezone``) when the model is woken to its floor (scale-to-zero only);
    empty: no schedule."""
    warm_end_cron: str = ""
    """Cron expression when the scheduled floor ends; from then the model idles to zero."""
    timezone: str = "UTC"
    """IANA time zone of the warm-hours schedule (the residency zone's)."""


@dataclass
class ServingArgs:
    """Inputs of :class:`Serving`."""

    namespace: str
    """Namespace of the model servers (restricted, default-deny)."""
    models: Sequence[ServedModel]
    """Models to serve."""
    models_bucket: pulumi.Input[str]
    """S3 bucket holding the exported model repositories (``<model>/<version>/...``)."""
    models_bucket_arn: pulumi.Input[str]
    """Its ARN, for the pull role."""
    storage_key_arn: pulumi.Input[str]
    """KMS key of the bucket (SSE-KMS), for the pull role."""
    cluster_access: ClusterAccess
    """IRSA access to the cluster (its OIDC provider)."""
    puller_image: str
    """Image of the model puller (this repository's ``sovml artifact`` + aws s3 sync), pinned."""
    prometheus_url: str = PROMETHEUS_URL
    """Prometheus the rollout analysis queries."""
    criteria: PromotionCriteria = field(default_factory=lambda: DEFAULT)
    """Promotion criteria: the same object the local ``sovml abtest`` decides with."""
    gpu_pool_max_size: int = 0
    """Max nodes of the GPU pool: no GPU-profile model scales past it (one GPU per replica);
    0 when the stack has no GPU pool (then no model may use the ``gpu`` profile)."""
    gpu_scale_percent: int = GPU_SCALE_PERCENT
    """Mean GPU utilisation of a GPU model's replicas above which KEDA adds one; below the
    ``GpuSaturated`` alert's threshold so serving scales out before it fires."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""


class Serving(pulumi.ComponentResource):
    """Triton per model as an Argo Rollouts canary whose analysis reads Prometheus.

    Per model: a ``Rollout`` of Triton (pinned NGC image; GPU profile requests ``nvidia.com/gpu``,
    tolerates the GPU taint and selects GPU nodes; CPU profile runs on the worker pool), an init
    container that pulls the model repository from the models bucket through IRSA and decrypts
    it when encrypted, liveness/readiness on Triton's health endpoints, stable and canary
    Services, an HPA and a PodDisruptionBudget, and an ``AnalysisTemplate`` whose Prometheus
    queries and thresholds are rendered from :mod:`policies.promotion`, the criteria the local
    A/B decision uses too. Traffic moves in the configured steps (5 -> 25 -> 50 -> 100 by
    default), each gated by the analysis; a failed analysis aborts and rolls back. The puller
    reaches S3 in the AWS provider's region.

    Argo Rollouts (pinned chart) rather than Flagger: it needs no service mesh (replica-weighted
    canaries work on plain Services, and mesh or ALB routing can be added later), its analysis
    is a first-class CRD we can render and validate, and rollbacks are a controller action,
    not a mesh reconfiguration.

    Scale to zero (``ServedModel.scale_to_zero``, KEDA installed by :class:`~components.keda.Keda`):
    a KEDA ``ScaledObject`` replaces the HPA (KEDA creates and owns the HPA; two on one target
    fight over its replicas). It scales on the model's request rate, the Triton counters
    monitoring scrapes (:func:`request_rate_query`), from the floor to ``max_replicas``, and
    to zero once no request has arrived for ``idle_minutes``; the PodDisruptionBudget becomes
    ``maxUnavailable: 1`` so that zero pods is not a permanently violated budget.

    The trade-off is the cold start. While idle the model has no endpoint, so a request fails
    fast (the Service has no ready pod); once a pod is starting, a retrying client waits for it,
    minutes on a pool at zero nodes (node launch, image pull, model pull from S3, Triton load).
    And since the trigger reads Triton's own counters, which vanish with the last pod, requests
    alone cannot wake an idle model. The wake path is a schedule: with ``warm_start_cron`` /
    ``warm_end_cron`` (the stack's ``servingWarmHours``) a KEDA cron trigger holds the floor
    during the tenant's working hours, and outside them the model goes to zero once idle; at
    other times an operator scales the Rollout to one replica, and from there the request rate
    keeps it up. A request-path activator (the KEDA HTTP add-on) would wake on the first
    request, but its API is in flux and its gRPC support unclear, so it is not deployed here.
    Canary analysis needs live traffic too, so roll out new versions while the model serves.
    Use it where idle hours dominate and the first caller can wait (SMB tenants); keep it off
    for latency-bound production serving.

    GPU saturation (the ``GpuSaturated`` alert's automated action): every ``gpu``-profile model
    gets a ScaledObject, warm or not, with a second Prometheus trigger on its replicas' summed
    DCGM utilisation (:func:`gpu_util_query`) against ``gpu_scale_percent`` per replica, so
    replicas grow before a GPU node has been saturated for the alert's 30 minutes. Its ceiling
    is the model's ``max_replicas`` cut to the GPU pool's max size; the replicas that find no GPU
    stay pending and the cluster autoscaler adds GPU nodes for them within the pool's bounds.
    A warm model keeps its floor (``minReplicaCount``) and scales on request rate and GPU
    utilisation instead of the CPU of an HPA (a GPU server's CPU says little about its load).
    CPU-profile models get no GPU trigger.
    """

    def __init__(
        self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate(args)
        super().__init__(f"{TYPE_PREFIX}:serving:Serving", name, None, opts)

        _role, sa = irsa_service_account(
            self,
            f"{name}-triton",
            access=args.cluster_access,
            namespace=args.namespace,
            service_account="triton",
            inline_policy=bucket_policy(
                args.models_bucket_arn,
                args.storage_key_arn,
                ("ReadModelRepositories", "DecryptSseKmsObjects"),
            ),
            automount_token=True,
        )
        controller = helm_release(
            f"{name}-argo-rollouts",
            args.sources.chart("argo-rollouts"),
            namespace=args.namespace,
            # The dashboard (its own image) stays off; the controller's image is the inventory's.
            values=args.sources.chart_images(
                "argo-rollouts",
                {
                    "installCRDs": True,
                    "dashboard": {"enabled": False},
                    "controller": {
                        "replicas": 2,
                        "nodeSelector": pool_selector("system"),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "500m", "memory": "256Mi"},
                        },
                    },
                    "podSecurityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": runtime_default(),
                    },
                    "containerSecurityContext": chart_container_security(),
                },
            ),
            opts=child(self),
        )
        region = region_of(self)
        for m in args.models:
            self._model(name, m, args, region, sa, controller)
        self.register_outputs({"models": [m.name for m in args.models]})

    def _model(
        self,
        name: str,
        m: ServedModel,
        args: ServingArgs,
        region: pulumi.Output[str],
        sa: k8s.core.v1.ServiceAccount,
        controller: k8s.helm.v3.Release,
    ) -> None:
        """One model: analysis, Services, Rollout, then its autoscaler and disruption budget."""
        app = f"triton-{m.name}"
        labels = {"app.kubernetes.io/name": app, "sovereign-ml/model": m.name}
        analysis = self._analysis(name, m, args, app, controller)
        services = [self._service(name, m, args.namespace, app, labels, v) for v in VARIANTS]
        rollout = k8s.apiextensions.CustomResource(
            f"{name}-{m.name}-rollout",
            api_version="argoproj.io/v1alpha1",
            kind="Rollout",
            metadata=metadata(app, args.namespace),
            spec={
                "replicas": m.min_replicas,
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {"prometheus.io/port": str(PORTS["metrics"])},
                    },
                    "spec": triton_pod(m, args, region, labels),
                },
                "strategy": {"canary": canary_strategy(m.name, args.criteria)},
            },
            opts=child(self, depends_on=[analysis, sa, *services]),
        )
        if m.scale_to_zero or m.profile == "gpu":
            # KEDA owns the HPA of this model; two autoscalers on one Rollout fight.
            self._scaled_object(name, m, args, app, rollout)
        else:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-{m.name}-hpa",
                metadata=metadata(app, args.namespace),
                spec=cpu_hpa_spec(rollout_ref(app), m.min_replicas, m.max_replicas),
                opts=child(self),
            )
        # Controllers scale past PDBs anyway; minAvailable 1 at zero pods would be a budget
        # violated for as long as the model idles (and alerted on), and would pin the last
        # pod against node drains. One voluntary disruption at a time keeps the intent.
        budget = {"maxUnavailable": 1} if m.scale_to_zero else {"minAvailable": 1}
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-{m.name}-pdb",
            metadata=metadata(app, args.namespace),
            spec={**budget, "selector": {"matchLabels": labels}},
            opts=child(self),
        )

    def _analysis(
        self,
        name: str,
        m: ServedModel,
        args: ServingArgs,
        app: str,
        controller: k8s.helm.v3.Release,
    ) -> k8s.apiextensions.CustomResource:
        """The AnalysisTemplate gating each canary step (:func:`components._canary.analysis_spec`
        says how each guard maps onto Argo's outcomes)."""
        return k8s.apiextensions.CustomResource(
            f"{name}-{m.name}-analysis",
            api_version="argoproj.io/v1alpha1",
            kind="AnalysisTemplate",
            metadata=metadata(analysis_template(app), args.namespace),
            spec=analysis_spec(args.criteria, m.name, args.namespace, args.prometheus_url),
            opts=child(self, depends_on=[controller]),
        )

    def _service(
        self, name: str, m: ServedModel, ns: str, app: str, labels: dict[str, str], variant: str
    ) -> k8s.core.v1.Service:
        """The ``stable`` or ``canary`` Service the Rollout steers traffic through."""
        return k8s.core.v1.Service(
            f"{name}-{m.name}-{variant}",
            metadata=metadata(f"{app}-{variant}", ns),
            spec={
                "selector": labels,
                "ports": [
                    {"name": k, "port": v, "targetPort": k, "protocol": "TCP"}
                    for k, v in PORTS.items()
                ],
            },
            opts=child(self),
        )

    def _scaled_object(
        self,
        name: str,
        m: ServedModel,
        args: ServingArgs,
        app: str,
        rollout: k8s.apiextensions.CustomResource,
    ) -> None:
        k8s.apiextensions.CustomResource(
            f"{name}-{m.name}-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata={
                **metadata(app, args.namespace),
                # A stack switching from the HPA hands that HPA (same name) to KEDA instead of
                # having KEDA's admission webhook refuse a second autoscaler on the Rollout.
                "annotations": {"scaledobject.keda.sh/transfer-hpa-ownership": "true"},
            },
            spec=scaled_object_spec(m, app, args),
            opts=child(self, depends_on=[rollout]),
        )


def validate(args: ServingArgs) -> None:
    """Raise ``ValueError`` naming the first field of ``args`` that is not allowed."""
    names = [m.name for m in args.models]
    if len(set(names)) != len(names):
        raise ValueError(f"ServingArgs.models: duplicate names in {names}")
    for m in args.models:
        if m.profile not in PROFILES:
            raise ValueError(
                f"ServingArgs.models[{m.name}].profile: {m.profile}; allowed {PROFILES}"
            )
        if not 1 <= m.min_replicas <= m.max_replicas:
            raise ValueError(
                f"ServingArgs.models[{m.name}]: replicas {m.min_replicas}..{m.max_replicas}; "
                "allowed 1 <= min <= max"
            )
        if m.scale_to_zero and not (1 <= m.idle_minutes <= 1440 and m.target_rps >= 1):
            raise ValueError(
                f"ServingArgs.models[{m.name}]: idle_minutes {m.idle_minutes}, target_rps "
                f"{m.target_rps}; allowed 1-1440 minutes and >= 1 request per second"
            )
    gpu_models = [m for m in args.models if m.profile == "gpu"]
    if gpu_models and args.gpu_pool_max_size < 1:
        raise ValueError(
            f"ServingArgs.gpu_pool_max_size: {args.gpu_pool_max_size}; allowed >= 1 when a model "
            f"uses the gpu profile ({gpu_models[0].name})"
        )
    if not 1 <= args.gpu_scale_percent < GPU_SATURATED_PERCENT:
        raise ValueError(
            f"ServingArgs.gpu_scale_percent: {args.gpu_scale_percent}; allowed 1-"
            f"{GPU_SATURATED_PERCENT - 1} (below the GpuSaturated alert's threshold)"
        )
    if ":" not in args.puller_image.rsplit("/", 1)[-1] or args.puller_image.endswith(":latest"):
        raise ValueError(f"ServingArgs.puller_image: {args.puller_image}; allowed a pinned tag")


def rollout_ref(app: str) -> dict[str, str]:
    """An autoscaler's ``scaleTargetRef`` to the model's Rollout."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": app}


def triton_pod(
    m: ServedModel, args: ServingArgs, region: pulumi.Input[str], labels: dict[str, str]
) -> dict[str, Any]:
    """Triton's pod: the model puller as init container, GPU or worker-pool placement."""
    gpu = m.profile == "gpu"
    models_volume = {"name": "models", "mountPath": "/models"}
    tmp_volume = {"name": "tmp", "mountPath": "/tmp"}
    triton = container(
        "triton",
        args.sources.image("triton"),
        cpu="2" if gpu else "1",
        memory="8Gi" if gpu else "2Gi",
        cpu_limit="4" if gpu else "2",
        gpu=1 if gpu else 0,
        command=["tritonserver"],
        args=[
            "--model-repository=/models",
            "--model-control-mode=none",
            "--strict-model-config=true",
            "--allow-metrics=true",
            # The request summary at the levels the canary's latency guard reads.
            *triton_metrics_args(),
            f"--http-port={PORTS['http']}",
            f"--grpc-port={PORTS['grpc']}",
            f"--metrics-port={PORTS['metrics']}",
        ],
        ports=[{"name": k, "containerPort": v} for k, v in PORTS.items()],
        probe_path="/v2/health/ready",
        probe_port=PORTS["http"],
        volume_mounts=[models_volume, tmp_volume],
    )
    triton["livenessProbe"]["httpGet"]["path"] = "/v2/health/live"
    puller = container(
        "model-puller",
        args.puller_image,
        cpu="250m",
        memory="512Mi",
        args=[
            "pull",
            "--bucket",
            "$(MODELS_BUCKET)",
            "--prefix",
            f"{m.name}/",
            "--dest",
            f"/models/{m.name}",
            "--decrypt-if-encrypted",
        ],
        env={"AWS_REGION": region, "MODELS_BUCKET": args.models_bucket},
        volume_mounts=[models_volume, tmp_volume],
    )
    spec = pod_spec(
        [triton],
        service_account="triton",
        gpu=gpu,
        node_selector=None if gpu else pool_selector("workers"),
        volumes=[{"name": "models", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        spread_label=labels,
    )
    spec["initContainers"] = [puller]
    return spec


def gpu_ceiling(m: ServedModel, gpu_pool_max_size: int) -> int:
    """Most replicas KEDA gives a GPU model: its ``max_replicas``, at most the pool's max nodes.

    One GPU per replica, and a pool node holds at least one GPU: past the pool's max size the
    extra replicas could only pend. Never below the floor, which KEDA requires (a floor above
    the pool, as on a one-node dev pool, already pends its extra replicas and scales no further).
    """
    return max(m.min_replicas, min(m.max_replicas, gpu_pool_max_size))


def scaled_object_spec(m: ServedModel, app: str, args: ServingArgs) -> dict[str, Any]:
    """KEDA's spec: request-rate trigger, GPU trigger (gpu profile), optional warm hours."""
    gpu = m.profile == "gpu"
    if not m.scale_to_zero:
        # A warm model: KEDA holds the floor and never idles it.
        floor: dict[str, int] = {"minReplicaCount": m.min_replicas}
    elif m.min_replicas == 1:
        # KEDA runs 0 <-> 1 itself and gives 1..N to its HPA.
        floor = {"minReplicaCount": 0}
    else:
        # A floor above one keeps zone redundancy once woken: idleReplicaCount 0 (the only
        # value KEDA supports) is then the idle state and minReplicaCount the floor.
        floor = {"idleReplicaCount": 0, "minReplicaCount": m.min_replicas}
    # The request-rate trigger cannot wake an idle model (its series vanish with the last
    # pod); the cron trigger is the wake path: the floor during the tenant's hours.
    warm = (
        [
            {
                "type": "cron",
                "metadata": {
                    "timezone": m.timezone,
                    "start": m.warm_start_cron,
                    "end": m.warm_end_cron,
                    "desiredReplicas": str(m.min_replicas),
                },
            }
        ]
        if m.scale_to_zero and m.warm_start_cron
        else []
    )
    gpu_trigger = (
        [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": args.prometheus_url,
                    "query": gpu_util_query(m.name, args.namespace),
                    "threshold": str(args.gpu_scale_percent),
                    # Only the request rate wakes or holds a model: a loaded model's idle GPU
                    # reads a few percent, which must not keep it from going to zero.
                    "activationThreshold": str(args.gpu_scale_percent),
                    "ignoreNullValues": "true",
                },
            }
        ]
        if gpu
        else []
    )
    return {
        "scaleTargetRef": rollout_ref(app),
        **floor,
        "maxReplicaCount": gpu_ceiling(m, args.gpu_pool_max_size) if gpu else m.max_replicas,
        **({"cooldownPeriod": m.idle_minutes * 60} if m.scale_to_zero else {}),
        "advanced": {"horizontalPodAutoscalerConfig": {"name": app}},
        "triggers": [
            *warm,
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": args.prometheus_url,
                    "query": request_rate_query(m.name),
                    "threshold": str(m.target_rps),
                    "activationThreshold": "0",
                    # No pods, no series: an empty result means zero requests.
                    "ignoreNullValues": "true",
                },
            },
            *gpu_trigger,
        ],
    }
