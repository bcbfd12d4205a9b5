"""Each component on its own, under the same recording mocks the synth uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from components.cluster import LOG_TYPES, Cluster, ClusterArgs
from components.encryption import Encryption, EncryptionArgs
from components.network import Network, NetworkArgs, subnet_plan
from components.node_pools import NodePools, NodePoolsArgs, NodePoolSpec
from components.storage import Storage, StorageArgs
from infra.synth.runner import run_recorded

REGION = "me-central-1"
KEY = "arn:aws:kms:me-central-1:123456789012:key/test"


def record(build: Callable[[], Any]) -> list[dict[str, Any]]:
    return run_recorded(build, stack="unit", region=REGION).resources


def of_type(resources: list[dict], typ: str) -> list[dict]:
    return [r for r in resources if r["type"] == typ]


def children_named_after(resources: list[dict], component: str, name: str) -> None:
    comp = next(r for r in resources if r["type"] == component)
    for r in resources:
        if r["parent"] == comp["urn"]:
            assert r["name"].startswith(f"{name}-"), f"{r['urn']} not named {name}-<role>"


def test_encryption_keys_rotate_and_are_protected() -> None:
    res = record(
        lambda: Encryption(
            "keys",
            EncryptionArgs(
                name_prefix="p", account_id="123456789012", partition="aws", region=REGION
            ),
        )
    )
    keys = of_type(res, "aws:kms/key:Key")
    assert len(keys) == 4
    for k in keys:
        assert k["inputs"]["enableKeyRotation"] is True, k["urn"]
        assert k["protect"] and k["retainOnDelete"], k["urn"]
        doc = json.loads(k["inputs"]["policy"])
        assert all(s["Principal"] != "*" for s in doc["Statement"]), k["urn"]
    logs = next(k for k in keys if k["name"] == "keys-logs")
    assert "logs.me-central-1.amazonaws.com" in logs["inputs"]["policy"]
    assert {a["inputs"]["name"] for a in of_type(res, "aws:kms/alias:Alias")} == {
        "alias/p-cluster",
        "alias/p-volumes",
        "alias/p-storage",
        "alias/p-logs",
    }
    children_named_after(res, "sovereign-ml:encryption:Encryption", "keys")


def test_encryption_rejects_unknown_purpose_before_any_resource() -> None:
    with pytest.raises(ValueError, match=r"EncryptionArgs.purposes: unknown \['tape'\]"):
        Encryption(
            "k",
            EncryptionArgs(
                name_prefix="p", account_id="1", partition="aws", region=REGION, purposes=["tape"]
            ),
        )


@pytest.mark.parametrize(("single", "nats"), [(False, 3), (True, 1)])
def test_network_spans_azs_with_endpoints_and_flow_logs(single: bool, nats: int) -> None:
    res = record(
        lambda: Network(
            "net",
            NetworkArgs(
                name_prefix="p",
                region=REGION,
                cidr="10.40.0.0/16",
                az_count=3,
                single_nat_gateway=single,
                logs_key_arn=KEY,
                log_retention_days=365,
            ),
        )
    )
    subnets = of_type(res, "aws:ec2/subnet:Subnet")
    assert {s["inputs"]["availabilityZone"] for s in subnets} == {
        "me-central-1a",
        "me-central-1b",
        "me-central-1c",
    }
    assert not any(s["inputs"]["mapPublicIpOnLaunch"] for s in subnets)
    assert len(of_type(res, "aws:ec2/natGateway:NatGateway")) == nats
    endpoints = of_type(res, "aws:ec2/vpcEndpoint:VpcEndpoint")
    gateway = [e for e in endpoints if e["inputs"]["vpcEndpointType"] == "Gateway"]
    assert [e["inputs"]["serviceName"] for e in gateway] == ["com.amazonaws.me-central-1.s3"]
    assert len(endpoints) - len(gateway) >= 4
    assert all(
        e["inputs"]["serviceName"].startswith("com.amazonaws.me-central-1.") for e in endpoints
    )
    (group,) = of_type(res, "aws:cloudwatch/logGroup:LogGroup")
    assert group["inputs"]["kmsKeyId"] == KEY
    assert of_type(res, "aws:ec2/flowLog:FlowLog")[0]["inputs"]["trafficType"] == "ALL"
    children_named_after(res, "sovereign-ml:network:Network", "net")


def test_subnet_plan_never_overlaps() -> None:
    import ipaddress

    private, public = subnet_plan("10.40.0.0/20", 3)
    nets = [ipaddress.ip_network(c) for c in private + public]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_storage_buckets_encrypted_versioned_blocked() -> None:
    res = record(
        lambda: Storage(
            "st",
            StorageArgs(
                name_prefix="p", account_id="123456789012", partition="aws", kms_key_arn=KEY
            ),
        )
    )
    buckets = of_type(res, "aws:s3/bucket:Bucket")
    assert {b["inputs"]["bucket"] for b in buckets} == {
        f"p-{x}-123456789012" for x in ("access-logs", "artifacts", "models", "features")
    }
    assert all(b["protect"] for b in buckets)
    for sse in of_type(
        res,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ):
        rule = sse["inputs"]["rules"][0]
        assert rule["applyServerSideEncryptionByDefault"] == {
            "sseAlgorithm": "aws:kms",
            "kmsMasterKeyId": KEY,
        }, sse["urn"]
        assert rule["bucketKeyEnabled"] is True
    assert len(of_type(res, "aws:s3/bucketVersioning:BucketVersioning")) == 4
    for pab in of_type(res, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(
            pab["inputs"][f]
            for f in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
    for pol in of_type(res, "aws:s3/bucketPolicy:BucketPolicy"):
        assert '"aws:SecureTransport": "false"' in pol["inputs"]["policy"], pol["urn"]


def test_cluster_is_private_encrypted_and_logs_everything() -> None:
    def build() -> Cluster:
        c = Cluster(
            "c",
            ClusterArgs(
                cluster_name="p",
                kubernetes_version="1.33",
                region=REGION,
                partition="aws",
                vpc_id="vpc-1",
                vpc_cidr="10.40.0.0/16",
                subnet_ids=["subnet-1", "subnet-2"],
                secrets_key_arn=KEY,
                logs_key_arn=KEY,
                log_retention_days=365,
            ),
        )

        # The STYLE.md form: assert on resolved outputs, naming the URN on failure.
        def check(args: list[Any]) -> None:
            urn, endpoint = args
            assert endpoint.startswith("https://"), f"{urn}: endpoint {endpoint}"

        pulumi.Output.all(c.urn, c.endpoint).apply(check)
        return c

    res = record(build)
    (eks,) = of_type(res, "aws:eks/cluster:Cluster")
    i = eks["inputs"]
    assert i["vpcConfig"]["endpointPublicAccess"] is False
    assert i["vpcConfig"]["endpointPrivateAccess"] is True
    assert i["encryptionConfig"] == {"resources": ["secrets"], "provider": {"keyArn": KEY}}
    assert i["enabledClusterLogTypes"] == list(LOG_TYPES)
    group = next(r for r in res if r["type"] == "aws:cloudwatch/logGroup:LogGroup")
    assert group["inputs"]["name"] == "/aws/eks/p/cluster"
    assert group["urn"] in eks["dependencies"], "log group must exist before the cluster"
    assert len(of_type(res, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")) == 1
    assert len(of_type(res, "pulumi:providers:kubernetes")) == 1
    assert {a["inputs"]["addonName"] for a in of_type(res, "aws:eks/addon:Addon")} == {
        "vpc-cni",
        "kube-proxy",
    }


def test_cluster_refuses_public_endpoint_without_cidrs() -> None:
    args = ClusterArgs(
        cluster_name="p", kubernetes_version="1.33", region=REGION, partition="aws", vpc_id="v",
        vpc_cidr="10.0.0.0/16", subnet_ids=["s"], secrets_key_arn=KEY, logs_key_arn=KEY,
        log_retention_days=365, endpoint_public_access=True,
    )  # fmt: skip
    with pytest.raises(ValueError, match="public_access_cidrs"):
        Cluster("c", args)


def _pool(**kw: Any) -> NodePoolSpec:
    base: dict[str, Any] = dict(
        name="gpu", gpu=True, instance_types=["g5.2xlarge"], capacity_type="ON_DEMAND",
        min_size=0, desired_size=1, max_size=2, disk_gib=200,
        taints=[("nvidia.com/gpu", "true", "NO_SCHEDULE")],
    )  # fmt: skip
    return NodePoolSpec(**{**base, **kw})


def test_gpu_pool_uses_nvidia_ami_taint_and_imdsv2() -> None:
    res = record(
        lambda: NodePools(
            "np",
            NodePoolsArgs(
                cluster_name="p",
                kubernetes_version="1.33",
                subnet_ids=["s1"],
                partition="aws",
                volume_key_arn=KEY,
                pools=[_pool()],
            ),
        )
    )
    (group,) = of_type(res, "aws:eks/nodeGroup:NodeGroup")
    assert group["inputs"]["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group["inputs"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
    ]
    assert "scalingConfig.desiredSize" in group["ignoreChanges"]
    (lt,) = of_type(res, "aws:ec2/launchTemplate:LaunchTemplate")
    ebs = lt["inputs"]["blockDeviceMappings"][0]["ebs"]
    assert ebs["encrypted"] == "true" and ebs["kmsKeyId"] == KEY and ebs["volumeType"] == "gp3"
    assert lt["inputs"]["metadataOptions"]["httpTokens"] == "required"


def test_gpu_pool_without_taint_is_refused() -> None:
    args = NodePoolsArgs(
        cluster_name="p", kubernetes_version="1.33", subnet_ids=["s"], partition="aws",
        volume_key_arn=KEY, pools=[_pool(taints=[])],
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"pools\[gpu\].taints"):
        NodePools("np", args)


def _baseline(**kw: Any) -> Any:
    from components.k8s_baseline import K8sBaseline, K8sBaselineArgs, TenantQuota

    args = dict(
        cluster_name="p", kubernetes_version="1.33", region=REGION, vpc_cidr="10.40.0.0/16",
        volume_key_arn=KEY, oidc_provider_arn="arn:aws:iam::1:oidc-provider/x",
        oidc_issuer_url="https://oidc.example/id/X", account_id="123456789012",
        tenants=[TenantQuota("acme", gpus=1)],
    )  # fmt: skip
    return K8sBaseline("base", K8sBaselineArgs(**{**args, **kw}))


def test_baseline_namespaces_are_restricted_and_denied_by_default() -> None:
    res = record(_baseline)
    namespaces = {
        r["inputs"]["metadata"]["name"]: r for r in of_type(res, "kubernetes:core/v1:Namespace")
    }
    assert set(namespaces) == {
        "kubeflow",
        "feature-store",
        "serving",
        "monitoring",
        "vault",
        "acme",
    }
    for ns in namespaces.values():
        labels = ns["inputs"]["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", ns["urn"]
    policies = of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
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


def test_baseline_quota_device_plugin_and_storage() -> None:
    res = record(_baseline)
    (quota,) = of_type(res, "kubernetes:core/v1:ResourceQuota")
    assert quota["inputs"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    (plugin,) = of_type(res, "kubernetes:apps/v1:DaemonSet")
    spec = plugin["inputs"]["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["nodeSelector"] == {"sovereign-ml/pool": "gpu"}
    assert ":" in spec["containers"][0]["image"] and "latest" not in spec["containers"][0]["image"]
    (sc,) = of_type(res, "kubernetes:storage.k8s.io/v1:StorageClass")
    assert sc["inputs"]["parameters"]["encrypted"] == "true"
    assert sc["inputs"]["parameters"]["kmsKeyId"] == KEY
    assert len(of_type(res, "kubernetes:helm.sh/v3:Release")) == 1  # cluster-autoscaler
    # No GPU pool: no device plugin.
    assert not of_type(record(lambda: _baseline(gpu_enabled=False)), "kubernetes:apps/v1:DaemonSet")


def test_baseline_refuses_a_tenant_named_like_a_platform_namespace() -> None:
    from components.k8s_baseline import TenantQuota

    with pytest.raises(ValueError, match=r"K8sBaselineArgs\.tenants"):
        _baseline(tenants=[TenantQuota("vault")])


def test_vault_release_is_ha_raft_with_kms_seal() -> None:
    from components.vault import Vault, VaultArgs

    unseal = "arn:aws:kms:me-central-1:123456789012:key/unseal"
    res = record(
        lambda: Vault(
            "vault",
            VaultArgs(
                namespace="vault",
                region=REGION,
                unseal_key_arn=unseal,
                oidc_provider_arn="arn:aws:iam::1:oidc-provider/x",
                oidc_issuer_url="https://oidc.example/id/X",
            ),
        )
    )
    (release,) = of_type(res, "kubernetes:helm.sh/v3:Release")
    assert release["protect"] and release["inputs"]["version"] == "0.30.0"
    ha = release["inputs"]["values"]["server"]["ha"]
    assert ha["enabled"] and ha["replicas"] == 3 and ha["raft"]["enabled"]
    assert f'kms_key_id = "{unseal}"' in ha["raft"]["config"]
    assert 'seal "awskms"' in ha["raft"]["config"] and "tls_cert_file" in ha["raft"]["config"]
    assert ha["disruptionBudget"]["enabled"]
    (inline,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    assert unseal in inline["inputs"]["policy"]


def test_vault_config_declares_the_layout() -> None:
    from components.vault_config import VaultConfig, VaultConfigArgs
    from components.vault_layout import layout

    res = record(
        lambda: VaultConfig(
            "vc", VaultConfigArgs(layout=layout(["acme"]), kubernetes_host="https://k8s")
        )
    )
    keys = {
        r["inputs"]["name"] for r in of_type(res, "vault:transit/secretBackendKey:SecretBackendKey")
    }
    assert keys == {"artifacts-platform", "artifacts-acme"}
    roles = of_type(res, "vault:kubernetes/authBackendRole:AuthBackendRole")
    acme = next(r for r in roles if r["inputs"]["roleName"] == "ns-acme")
    assert acme["inputs"]["boundServiceAccountNamespaces"] == ["acme"]
    policy = next(
        r for r in of_type(res, "vault:index/policy:Policy") if r["inputs"]["name"] == "ns-acme"
    )
    assert "artifacts-acme" in policy["inputs"]["policy"]
    assert "artifacts-platform" not in policy["inputs"]["policy"]
    assert len(of_type(res, "vault:index/audit:Audit")) == 1


def _serving(**kw: Any) -> Any:
    from components.serving import ServedModel, Serving, ServingArgs

    args = dict(
        namespace="serving", models=[ServedModel("m", "cpu", min_replicas=1)],
        models_bucket="b", models_bucket_arn="arn:aws:s3:::b", storage_key_arn=KEY,
        oidc_provider_arn="arn:aws:iam::1:oidc-provider/x",
        oidc_issuer_url="https://oidc.example/id/X", region=REGION,
        puller_image="ghcr.io/sovereign-ml/model-puller:0.1.0",
    )  # fmt: skip
    return Serving("serving", ServingArgs(**{**args, **kw}))


def test_cpu_profile_stays_off_gpus_and_pulls_through_irsa() -> None:
    res = record(_serving)
    (rollout,) = of_type(res, "kubernetes:argoproj.io/v1alpha1:Rollout")
    pod = rollout["inputs"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert pod["nodeSelector"] == {"sovereign-ml/pool": "workers"}
    assert "tolerations" not in pod
    assert pod["initContainers"][0]["image"] == "ghcr.io/sovereign-ml/model-puller:0.1.0"
    (sa,) = of_type(res, "kubernetes:core/v1:ServiceAccount")
    assert "eks.amazonaws.com/role-arn" in sa["inputs"]["metadata"]["annotations"]
    inline = next(r for r in of_type(res, "aws:iam/rolePolicy:RolePolicy"))
    assert (
        "s3:GetObject" in inline["inputs"]["policy"]
        and "s3:PutObject" not in inline["inputs"]["policy"]
    )


def test_serving_refuses_unpinned_puller_and_bad_profile() -> None:
    from components.serving import ServedModel

    with pytest.raises(ValueError, match="puller_image"):
        _serving(puller_image="ghcr.io/x/puller:latest")
    with pytest.raises(ValueError, match="profile"):
        _serving(models=[ServedModel("m", "tpu")])


SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def test_scale_to_zero_hands_the_rollout_to_a_keda_scaled_object() -> None:
    from components.serving import ServedModel, request_rate_query

    res = record(
        lambda: _serving(
            models=[
                ServedModel("m", "cpu", min_replicas=1, max_replicas=4, scale_to_zero=True),
                ServedModel("warm", "cpu", min_replicas=1, max_replicas=3),
            ]
        )
    )
    (so,) = of_type(res, SCALED_OBJECT)
    spec = so["inputs"]["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": "triton-m",
    }, so["urn"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 4), so["urn"]
    assert spec["cooldownPeriod"] == 15 * 60, so["urn"]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["name"] == "triton-m"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus", so["urn"]
    meta = trigger["metadata"]
    assert meta["query"] == request_rate_query("m"), so["urn"]
    assert meta["serverAddress"] == (
        "http://prometheus-kube-prometheus-prometheus.monitoring.svc:9090"
    )
    assert (meta["activationThreshold"], meta["ignoreNullValues"]) == ("0", "true")
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata is strings"
    assert so["inputs"]["metadata"]["annotations"] == {
        "scaledobject.keda.sh/transfer-hpa-ownership": "true"
    }
    rollout = next(
        r
        for r in of_type(res, "kubernetes:argoproj.io/v1alpha1:Rollout")
        if r["inputs"]["metadata"]["name"] == "triton-m"
    )
    assert rollout["urn"] in so["dependencies"], so["urn"]
    # KEDA owns the HPA of the scale-to-zero model; the other model keeps its own HPA.
    targets = [h["inputs"]["spec"]["scaleTargetRef"]["name"] for h in of_type(res, HPA)]
    assert targets == ["triton-warm"]
    budgets = {p["inputs"]["metadata"]["name"]: p["inputs"]["spec"] for p in of_type(res, PDB)}
    assert budgets["triton-m"]["maxUnavailable"] == 1 and "minAvailable" not in budgets["triton-m"]
    assert budgets["triton-warm"]["minAvailable"] == 1


def test_warm_hours_add_a_cron_trigger_at_the_floor() -> None:
    from components.serving import ServedModel

    model = ServedModel(
        "m",
        "cpu",
        min_replicas=2,
        scale_to_zero=True,
        warm_start_cron="0 8 * * 1-5",
        warm_end_cron="0 18 * * 1-5",
        timezone="Asia/Dubai",
    )
    (so,) = of_type(record(lambda: _serving(models=[model])), SCALED_OBJECT)
    cron, rate = so["inputs"]["spec"]["triggers"]
    assert cron == {
        "type": "cron",
        "metadata": {
            "timezone": "Asia/Dubai",
            "start": "0 8 * * 1-5",
            "end": "0 18 * * 1-5",
            "desiredReplicas": "2",
        },
    }
    assert rate["type"] == "prometheus"


def test_without_scale_to_zero_the_hpa_stays() -> None:
    res = record(_serving)
    assert not of_type(res, SCALED_OBJECT)
    (hpa,) = of_type(res, HPA)
    spec = hpa["inputs"]["spec"]
    assert spec["scaleTargetRef"]["kind"] == "Rollout" and spec["minReplicas"] == 1, hpa["urn"]
    (pdb,) = of_type(res, PDB)
    assert pdb["inputs"]["spec"]["minAvailable"] == 1, pdb["urn"]


def test_scale_to_zero_keeps_a_higher_floor_once_woken() -> None:
    from components.serving import ServedModel

    res = record(
        lambda: _serving(
            models=[ServedModel("m", "gpu", min_replicas=2, scale_to_zero=True, idle_minutes=30)]
        )
    )
    (so,) = of_type(res, SCALED_OBJECT)
    spec = so["inputs"]["spec"]
    assert (spec["idleReplicaCount"], spec["minReplicaCount"]) == (0, 2), so["urn"]
    assert spec["cooldownPeriod"] == 1800, so["urn"]


def test_request_rate_query_reads_the_counters_promotion_reads() -> None:
    from components.serving import request_rate_query
    from policies.promotion import error_rate_query

    query = request_rate_query("credit-risk", "5m")
    assert query == (
        'sum(rate(nv_inference_request_success{model="credit-risk"}[5m])) + '
        '(sum(rate(nv_inference_request_failure{model="credit-risk"}[5m])) or vector(0))'
    )
    for counter in ("nv_inference_request_success", "nv_inference_request_failure"):
        assert counter in error_rate_query('model="credit-risk"')


def test_serving_refuses_a_bad_idle_window() -> None:
    from components.serving import ServedModel

    with pytest.raises(ValueError, match=r"models\[m\]: idle_minutes 0"):
        _serving(
            models=[ServedModel("m", "cpu", min_replicas=1, scale_to_zero=True, idle_minutes=0)]
        )


def _keda(**kw: Any) -> Any:
    from components.keda import Keda, KedaArgs

    args = dict(namespace="keda", vpc_cidr="10.40.0.0/16")
    return Keda("keda", KedaArgs(**{**args, **kw}))


def test_keda_release_is_pinned_restricted_and_least_privilege() -> None:
    from components.keda import KEDA_CHART

    res = record(_keda)
    (release,) = of_type(res, "kubernetes:helm.sh/v3:Release")
    inputs = release["inputs"]
    assert (inputs["chart"], inputs["version"]) == KEDA_CHART[:2] == ("keda", "2.19.0")
    assert inputs["namespace"] == "keda" and inputs["repositoryOpts"]["repo"] == KEDA_CHART[2]
    values = inputs["values"]
    assert values["watchNamespace"] == "serving"
    assert values["nodeSelector"] == {"sovereign-ml/pool": "system"}
    assert values["rbac"]["scaledRefKinds"] == [{"apiGroup": "argoproj.io", "kind": "rollouts"}]
    assert values["permissions"]["operator"]["restrict"]["secret"] is True
    for c in ("operator", "metricServer", "webhooks"):
        sc = values["securityContext"][c]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"], c
        assert sc["capabilities"] == {"drop": ["ALL"]}, c
        assert values["podSecurityContext"][c]["runAsNonRoot"] is True, c
        assert values["podSecurityContext"][c]["seccompProfile"]["type"] == "RuntimeDefault", c
        res_c = values["resources"][c]
        assert res_c["limits"]["memory"] == res_c["requests"]["memory"], c
    policies = {
        (p["inputs"]["metadata"]["namespace"], p["inputs"]["metadata"]["name"]): p["inputs"]["spec"]
        for p in of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    control = policies[("keda", "allow-control-plane")]["ingress"][0]
    assert control["from"] == [{"ipBlock": {"cidr": "10.40.0.0/16"}}]
    assert {p["port"] for p in control["ports"]} == {6443, 9443}
    egress = policies[("keda", "allow-keda-to-prometheus")]["egress"][0]
    assert egress["ports"] == [{"protocol": "TCP", "port": 9090}]
    ingress = policies[("monitoring", "allow-queries-from-keda")]["ingress"][0]["from"][0]
    assert ingress["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
    assert not of_type(res, "aws:iam/role:Role"), "KEDA calls no AWS API: no IRSA role"
    children_named_after(res, "sovereign-ml:keda:Keda", "keda")


def test_keda_refuses_bad_args_before_any_resource() -> None:
    with pytest.raises(ValueError, match=r"KedaArgs.vpc_cidr: 'ten'"):
        _keda(vpc_cidr="ten")
    with pytest.raises(ValueError, match=r"KedaArgs.namespace: 'kube-system'"):
        _keda(namespace="kube-system")


def test_baseline_gives_keda_a_denied_platform_namespace() -> None:
    from components.k8s_baseline import PLATFORM_NAMESPACES

    res = record(lambda: _baseline(platform_namespaces=(*PLATFORM_NAMESPACES, "keda")))
    (ns,) = [
        n
        for n in of_type(res, "kubernetes:core/v1:Namespace")
        if n["inputs"]["metadata"]["name"] == "keda"
    ]
    assert ns["inputs"]["metadata"]["labels"]["sovereign-ml/role"] == "platform"
    deny = [
        p
        for p in of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if p["inputs"]["metadata"].get("namespace") == "keda"
        and p["inputs"]["metadata"]["name"] == "default-deny"
    ]
    assert len(deny) == 1


def _kubeflow(**kw: Any) -> Any:
    from components.kubeflow import Kubeflow, KubeflowArgs

    args = dict(
        namespace="kubeflow", name_prefix="p", region=REGION, artifacts_bucket="art",
        artifacts_bucket_arn="arn:aws:s3:::art", storage_key_arn=KEY,
        oidc_provider_arn="arn:aws:iam::1:oidc-provider/x", oidc_issuer_url="https://o/id/X",
        vpc_id="vpc-1", vpc_cidr="10.40.0.0/16", subnet_ids=["s1", "s2"], db_key_arn=KEY,
        tenants=["acme"],
    )  # fmt: skip
    return Kubeflow("kf", KubeflowArgs(**{**args, **kw}))


def test_kubeflow_uses_s3_via_irsa_and_a_private_encrypted_rds() -> None:
    res = record(_kubeflow)
    (db,) = of_type(res, "aws:rds/instance:Instance")
    i = db["inputs"]
    assert i["storageEncrypted"] and i["kmsKeyId"] == KEY and not i["publiclyAccessible"]
    assert i["manageMasterUserPassword"] and "password" not in i
    assert db["protect"] and i["multiAz"] and i["deletionProtection"]
    (params,) = of_type(res, "aws:rds/parameterGroup:ParameterGroup")
    assert {"name": "require_secure_transport", "value": "1"} in params["inputs"]["parameters"]
    (cfg,) = of_type(res, "kubernetes:core/v1:ConfigMap")
    assert cfg["inputs"]["data"]["bucketName"] == "art"
    assert cfg["inputs"]["data"]["ObjectStoreConfigSecure"] == "true"
    sas = {
        (s["inputs"]["metadata"]["namespace"], s["inputs"]["metadata"]["name"])
        for s in of_type(res, "kubernetes:core/v1:ServiceAccount")
    }
    assert sas == {
        ("kubeflow", "ml-pipeline"),
        ("kubeflow", "pipeline-runner"),
        ("acme", "pipeline-runner"),
    }
    tenant_policy = next(
        r for r in of_type(res, "aws:iam/rolePolicy:RolePolicy") if "acme" in r["name"]
    )
    assert "arn:aws:s3:::art/tenants/acme/*" in tenant_policy["inputs"]["policy"]
    (kfp,) = of_type(res, "kubernetes:kustomize/v2:Directory")
    assert kfp["inputs"]["directory"].endswith("components/manifests/kfp")
    assert not [r for r in res if "minio" in r["name"]]


def test_kubeflow_smb_runs_mysql_on_an_encrypted_volume() -> None:
    res = record(lambda: _kubeflow(db_mode="in-cluster"))
    assert not of_type(res, "aws:rds/instance:Instance")
    (sts,) = of_type(res, "kubernetes:apps/v1:StatefulSet")
    claim = sts["inputs"]["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "gp3-encrypted"
    with pytest.raises(ValueError, match="db_mode"):
        _kubeflow(db_mode="sqlite")


def _features(**kw: Any) -> Any:
    from components.feature_store import FeatureStore, FeatureStoreArgs

    args = dict(
        namespace="feature-store", name_prefix="p", project="credit_risk",
        features_bucket="feat", features_bucket_arn="arn:aws:s3:::feat", storage_key_arn=KEY,
        oidc_provider_arn="arn:aws:iam::1:oidc-provider/x", oidc_issuer_url="https://o/id/X",
        vpc_id="vpc-1", vpc_cidr="10.40.0.0/16", subnet_ids=["s1", "s2"],
    )  # fmt: skip
    return FeatureStore("fs", FeatureStoreArgs(**{**args, **kw}))


def test_feature_store_online_store_encrypted_and_server_locked_down() -> None:
    res = record(_features)
    (cache,) = of_type(res, "aws:elasticache/replicationGroup:ReplicationGroup")
    i = cache["inputs"]
    assert i["atRestEncryptionEnabled"] == "true" and i["kmsKeyId"] == KEY
    assert i["transitEncryptionEnabled"] is True and i["authToken"] == "[secret]"
    assert cache["protect"] and i["multiAzEnabled"]
    (deploy,) = of_type(res, "kubernetes:apps/v1:Deployment")
    pod = deploy["inputs"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "quay.io/feastdev/feature-server:0.67.0"
    assert "env" not in pod["containers"][0]  # the password arrives as a file
    (secret,) = of_type(res, "kubernetes:core/v1:Secret")
    assert secret["inputs"]["stringData"] == {"password": "[secret]"}
    (netpol,) = of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    sources = {
        f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for f in netpol["inputs"]["spec"]["ingress"][0]["from"]
    }
    assert sources == {"serving", "kubeflow"}
    (cfg,) = of_type(res, "kubernetes:core/v1:ConfigMap")
    assert "registry: s3://feat/registry.db" in cfg["inputs"]["data"]["feature_store.yaml"]
    assert "ssl=true" in cfg["inputs"]["data"]["feature_store.yaml"]
    assert len(of_type(res, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")) == 1


def test_feature_store_smb_uses_in_cluster_redis() -> None:
    res = record(lambda: _features(online_store="in-cluster", production=False))
    assert not of_type(res, "aws:elasticache/replicationGroup:ReplicationGroup")
    (sts,) = of_type(res, "kubernetes:apps/v1:StatefulSet")
    assert (
        sts["inputs"]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"]
        == "gp3-encrypted"
    )


def test_kubeflow_provides_the_pipelines_model_registry_volume() -> None:
    from pipelines.training.images import REGISTRY_PVC

    res = record(_kubeflow)
    (pvc,) = of_type(res, "kubernetes:core/v1:PersistentVolumeClaim")
    assert pvc["inputs"]["metadata"]["name"] == REGISTRY_PVC
    assert pvc["inputs"]["spec"]["storageClassName"] == "gp3-encrypted"
