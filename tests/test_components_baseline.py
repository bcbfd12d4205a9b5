"""The cluster baseline, the GPU device plugin and cluster-autoscaler, under the recording mocks.

The device plugin and the autoscaler were children of the baseline; they are components of their
own now, and their resources keep their deployed identity through aliases to the baseline.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.gpu_device_plugin import GpuDevicePlugin, GpuDevicePluginArgs
from components.k8s_baseline import (
    PLATFORM_NAMESPACES,
    SERVING_PORTS,
    K8sBaseline,
    K8sBaselineArgs,
    TenantQuota,
)
from components.monitoring import PUSHGATEWAY_CHART, PUSHGATEWAY_URL
from components.serving import PORTS
from pipelines import pushgateway
from tests.component_mocks import ACCESS, KEY, children_named_after, of_type, record

NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
BASELINE = "sovereign-ml:k8s_baseline:K8sBaseline"
MOVED = (
    "sovereign-ml:gpu_device_plugin:GpuDevicePlugin",
    "sovereign-ml:cluster_autoscaler:ClusterAutoscaler",
)
"""Components whose resources were the baseline's children."""


def _baseline(**kw: Any) -> K8sBaseline:
    args: dict[str, Any] = dict(
        vpc_cidr="10.40.0.0/16", volume_key_arn=KEY, tenants=[TenantQuota("acme", gpus=1)]
    )
    return K8sBaseline("base", K8sBaselineArgs(**{**args, **kw}))


def _autoscaler(moved_from: pulumi.Resource | None = None, **kw: Any) -> ClusterAutoscaler:
    args: dict[str, Any] = dict(
        kubernetes_version="1.33", cluster_access=ACCESS, account_id="123456789012",
    )  # fmt: skip
    return ClusterAutoscaler("base", ClusterAutoscalerArgs(**{**args, **kw}), moved_from=moved_from)


def test_baseline_namespaces_are_restricted_and_denied_by_default() -> None:
    res = record(_baseline)
    namespaces = {
        r["inputs"]["metadata"]["name"]: r for r in of_type(res, "kubernetes:core/v1:Namespace")
    }
    assert set(namespaces) == {*PLATFORM_NAMESPACES, "acme"}
    for ns in namespaces.values():
        labels = ns["inputs"]["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", ns["urn"]
    policies = of_type(res, NETPOL)
    deny = {
        p["inputs"]["metadata"]["namespace"]
        for p in policies
        if p["inputs"]["metadata"]["name"] == "default-deny"
        and p["inputs"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    }
    assert deny == set(namespaces)
    aws_egress = next(
        p for p in policies if p["inputs"]["metadata"]["name"] == "allow-aws-endpoints"
    )
    cidrs = [t["ipBlock"]["cidr"] for t in aws_egress["inputs"]["spec"]["egress"][0]["to"]]
    assert cidrs[0] == "10.40.0.0/16" and len(cidrs) > 1  # VPC, then the S3 prefix list
    for ns in namespaces:
        names = {
            p["inputs"]["metadata"]["name"]
            for p in policies
            if p["inputs"]["metadata"]["namespace"] == ns
        }
        # Inference only through the gateway: serving admits it, no other namespace sends there
        # (the gateway's own namespace, istio-ingress, is not among these).
        gateway = {"allow-gateway-clients"} if ns == "serving" else set()
        assert "allow-to-serving-gateway" not in names
        pushes = {"kubeflow": {"allow-to-pushgateway"}, "monitoring": {"allow-pipeline-pushes"}}
        assert gateway <= names and pushes.get(ns, set()) <= names, (ns, names)
        assert len(names) == 5 + len(gateway) + len(pushes.get(ns, ())), (ns, names)


def test_only_kubeflow_reaches_the_pushgateway_and_only_its_port() -> None:
    """The pipeline's exit task pushes its outcome: kubeflow -> monitoring pushgateway:9091."""
    policies = {
        (p["inputs"]["metadata"]["namespace"], p["inputs"]["metadata"]["name"]): p["inputs"]["spec"]
        for p in of_type(record(_baseline), NETPOL)
    }
    pods = {"app.kubernetes.io/name": "prometheus-pushgateway"}
    port = [{"protocol": "TCP", "port": 9091}]
    egress = policies[("kubeflow", "allow-to-pushgateway")]
    assert egress["policyTypes"] == ["Egress"]
    (rule,) = egress["egress"]
    assert rule["ports"] == port
    assert rule["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": pods},
        }
    ]
    ingress = policies[("monitoring", "allow-pipeline-pushes")]
    assert ingress["podSelector"] == {"matchLabels": pods}
    assert ingress["ingress"] == [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}
            ],
            "ports": port,
        }
    ]
    # No other namespace gets either allow.
    assert {k for k in policies if k[1] in ("allow-to-pushgateway", "allow-pipeline-pushes")} == {
        ("kubeflow", "allow-to-pushgateway"),
        ("monitoring", "allow-pipeline-pushes"),
    }
    # The chart's pods carry that label and listen there (components/monitoring.py's URL).
    assert PUSHGATEWAY_CHART[0] == pods["app.kubernetes.io/name"]
    assert PUSHGATEWAY_URL.endswith(":9091") and PUSHGATEWAY_URL == pushgateway.DEFAULT_URL


def test_baseline_quota_and_storage() -> None:
    res = record(_baseline)
    (quota,) = of_type(res, "kubernetes:core/v1:ResourceQuota")
    assert quota["inputs"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    (sc,) = of_type(res, "kubernetes:storage.k8s.io/v1:StorageClass")
    assert sc["inputs"]["metadata"]["name"] == "gp3-encrypted"
    assert sc["inputs"]["parameters"]["encrypted"] == "true"
    assert sc["inputs"]["parameters"]["kmsKeyId"] == KEY
    assert not of_type(res, "kubernetes:apps/v1:DaemonSet"), "the device plugin is its own"
    assert not of_type(res, "kubernetes:helm.sh/v3:Release"), "the autoscaler is its own"
    children_named_after(res, BASELINE, "base")


def test_baseline_refuses_a_tenant_named_like_a_platform_namespace() -> None:
    with pytest.raises(ValueError, match=r"K8sBaselineArgs\.tenants"):
        _baseline(tenants=[TenantQuota("vault")])


def test_baseline_gives_keda_a_denied_platform_namespace() -> None:
    res = record(lambda: _baseline(platform_namespaces=(*PLATFORM_NAMESPACES, "keda")))
    (ns,) = [
        n
        for n in of_type(res, "kubernetes:core/v1:Namespace")
        if n["inputs"]["metadata"]["name"] == "keda"
    ]
    assert ns["inputs"]["metadata"]["labels"]["sovereign-ml/role"] == "platform"
    deny = [
        p
        for p in of_type(res, NETPOL)
        if p["inputs"]["metadata"].get("namespace") == "keda"
        and p["inputs"]["metadata"]["name"] == "default-deny"
    ]
    assert len(deny) == 1


def test_the_serving_gateway_ports_are_tritons() -> None:
    assert (PORTS["http"], PORTS["grpc"]) == SERVING_PORTS


def test_device_plugin_runs_on_gpu_nodes_only() -> None:
    res = record(lambda: GpuDevicePlugin("base", GpuDevicePluginArgs()))
    (plugin,) = of_type(res, "kubernetes:apps/v1:DaemonSet")
    assert plugin["name"] == "base-nvidia-device-plugin"
    assert plugin["inputs"]["metadata"]["namespace"] == "kube-system"
    spec = plugin["inputs"]["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["nodeSelector"] == {"sovereign-ml/pool": "gpu"}
    (c,) = spec["containers"]
    assert ":" in c["image"] and "latest" not in c["image"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not [a for a in plugin["aliases"] if a.get("parentUrn")], "no old parent, no alias"
    with pytest.raises(ValueError, match=r"GpuDevicePluginArgs.image"):
        GpuDevicePlugin("g", GpuDevicePluginArgs(image="nvcr.io/nvidia/k8s-device-plugin:latest"))


def test_autoscaler_scales_only_this_clusters_groups_through_irsa() -> None:
    res = record(_autoscaler)
    (release,) = of_type(res, "kubernetes:helm.sh/v3:Release")
    values = release["inputs"]["values"]
    assert release["name"] == "base-cluster-autoscaler"
    assert values["awsRegion"] == "me-central-1"
    assert values["image"]["tag"] == "v1.33.0"
    assert values["nodeSelector"] == {"sovereign-ml/pool": "system"}
    (role,) = of_type(res, "aws:iam/role:Role")
    assert role["name"] == "base-autoscaler-irsa"
    (arn,) = values["rbac"]["serviceAccount"]["annotations"].values()
    assert arn.startswith("arn:aws:iam::123456789012:role/base-autoscaler-irsa"), arn
    (inline,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    scale = json.loads(inline["inputs"]["policy"])["Statement"][2]
    assert scale["Resource"].startswith("arn:aws:autoscaling:me-central-1:123456789012:")
    assert scale["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/p": "owned"}
    }
    with pytest.raises(ValueError, match=r"ClusterAutoscalerArgs.kubernetes_version: 1.29"):
        _autoscaler(kubernetes_version="1.29")


def test_moved_resources_alias_their_old_parent_under_mocks() -> None:
    """Every resource the device plugin and autoscaler took over from the baseline carries an
    alias whose parentUrn is the baseline's URN: ``pulumi up`` then moves it instead of
    replacing it. Their own children (the role's inline policy) follow their parent."""

    def program() -> None:
        baseline = _baseline()
        GpuDevicePlugin("base", GpuDevicePluginArgs(), moved_from=baseline)
        _autoscaler(moved_from=baseline)

    assert assert_moved_children_alias_the_baseline(record(program)) == {
        "base-nvidia-device-plugin",
        "base-autoscaler-irsa",
        "base-cluster-autoscaler",
    }


def assert_moved_children_alias_the_baseline(res: list[dict[str, Any]]) -> set[str]:
    """The alias check, on any record holding a baseline and the components moved out of it;
    returns the names of the moved resources."""
    (baseline,) = of_type(res, BASELINE)
    moved = {r["urn"] for r in res if r["type"] in MOVED}
    children = [r for r in res if r["parent"] in moved]
    for r in children:
        assert {"parentUrn": baseline["urn"]} in r["aliases"], f"{r['urn']}: {r['aliases']}"
    aliased = {r["urn"] for r in children}
    for r in res:
        if r["parent"] in aliased:  # grandchildren: the engine derives theirs from the parent
            assert r["type"] == "aws:iam/rolePolicy:RolePolicy", r["urn"]
    return {r["name"] for r in children}


@pytest.mark.parametrize("stack", ["dev", "prod-uae"])
def test_the_programs_moved_resources_alias_the_baseline(
    stack: str, stack_records: dict[str, dict[str, Any]]
) -> None:
    """The same holds for what the program declares for real stacks (both have a GPU pool)."""
    assert assert_moved_children_alias_the_baseline(stack_records[stack]["resources"]) == {
        "baseline-nvidia-device-plugin",
        "baseline-autoscaler-irsa",
        "baseline-cluster-autoscaler",
    }
