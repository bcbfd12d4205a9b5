"""The whole program, once per stack file, judged through the synth record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config.stackfile import ROOT, list_stacks
from infra.synth.runner import SynthError, summary, synthesize
from policies.zones import ZONES

GOLDEN = Path(__file__).parent / "golden"
FIXTURES = Path(__file__).parent / "fixtures" / "stacks"


@pytest.fixture(scope="module")
def records(stack_records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return stack_records


MIRROR = "111122223333.dkr.ecr.me-central-1.amazonaws.com"
"""prod-uae's image mirror: the zone's ECR registry of its allowed account."""


def of_type(record: dict, typ: str) -> list[dict]:
    return [r for r in record["resources"] if r["type"] == typ]


@pytest.mark.parametrize("stack", list_stacks())
def test_golden_summary(stack: str, records: dict, update_golden: bool) -> None:
    """Types and counts per stack; regenerate with `make golden`."""
    path = GOLDEN / f"{stack}.summary.json"
    got = summary(records[stack])
    if update_golden:
        path.write_text(json.dumps(got, indent=2) + "\n")
    assert path.exists(), f"missing {path}: run `make golden`"
    assert got == json.loads(path.read_text()), f"{stack} changed: review, then `make golden`"


@pytest.mark.parametrize("stack", list_stacks())
def test_every_aws_resource_uses_the_explicit_regional_provider(stack: str, records: dict) -> None:
    record = records[stack]
    providers = {r["urn"]: r for r in of_type(record, "pulumi:providers:aws")}
    assert len(providers) == 1
    (provider,) = providers.values()
    assert provider["inputs"]["region"] in ZONES[record["config"]["zone"]].region_names
    tags = provider["inputs"]["defaultTags"]["tags"]
    assert {"owner", "cost-center", "data-classification"} <= set(tags)
    for r in record["resources"]:
        if r["custom"] and r["type"].startswith("aws:"):
            assert r["provider"] in providers, f"{r['urn']} uses the default provider"
            assert "region" not in r["inputs"], f"{r['urn']} overrides the region"


def test_prod_uae_has_what_the_issue_asks_for(records: dict) -> None:
    prod = records["prod-uae"]
    assert len(of_type(prod, "aws:ec2/vpc:Vpc")) == 1
    azs = {s["inputs"]["availabilityZone"] for s in of_type(prod, "aws:ec2/subnet:Subnet")}
    assert azs == {"me-central-1a", "me-central-1b", "me-central-1c"}
    endpoints = of_type(prod, "aws:ec2/vpcEndpoint:VpcEndpoint")
    kinds = [e["inputs"]["vpcEndpointType"] for e in endpoints]
    assert kinds.count("Gateway") == 1 and kinds.count("Interface") >= 4
    assert len(of_type(prod, "aws:ec2/flowLog:FlowLog")) == 1
    keys = of_type(prod, "aws:kms/key:Key")
    # Every encryption key rotates; the HMAC pseudonymization key and the mirror's image-signing
    # key cannot (KMS rotates only symmetric encryption keys).
    encrypting = [k for k in keys if k["inputs"]["customerMasterKeySpec"] == "SYMMETRIC_DEFAULT"]
    assert len(encrypting) >= 4 and all(k["inputs"]["enableKeyRotation"] for k in encrypting)
    assert sorted(k["name"] for k in keys if k not in encrypting) == [
        "keys-pseudonymization",
        "mirror-signing-key",
    ]
    assert all(k["protect"] for k in keys)
    (eks,) = of_type(prod, "aws:eks/cluster:Cluster")
    assert eks["inputs"]["encryptionConfig"]["resources"] == ["secrets"]
    assert eks["inputs"]["vpcConfig"]["endpointPublicAccess"] is False
    assert len(eks["inputs"]["enabledClusterLogTypes"]) == 5
    assert len(of_type(prod, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")) == 1
    gpu = [
        g
        for g in of_type(prod, "aws:eks/nodeGroup:NodeGroup")
        if "NVIDIA" in g["inputs"]["amiType"]
    ]
    assert len(gpu) == 1
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in gpu[0]["inputs"][
        "taints"
    ]
    assert gpu[0]["inputs"]["capacityType"] == "ON_DEMAND"

    buckets = of_type(prod, "aws:s3/bucket:Bucket")
    # Artifacts, models, features, access logs, and the audit trail's object-locked bucket.
    assert len(buckets) == 5 and all(b["protect"] for b in buckets)
    by_bucket: dict[str, set[str]] = {b["urn"]: set() for b in buckets}
    for typ in ("ServerSideEncryptionConfiguration", "Versioning", "PublicAccessBlock"):
        token = f"aws:s3/bucket{typ}:Bucket{typ}"
        for r in of_type(prod, token):
            (owner,) = [d for d in r["dependencies"] if d in by_bucket]
            by_bucket[owner].add(typ)
            if typ == "ServerSideEncryptionConfiguration":
                default = r["inputs"]["rules"][0]["applyServerSideEncryptionByDefault"]
                assert default["sseAlgorithm"] == "aws:kms"
                assert default["kmsMasterKeyId"].startswith("arn:aws:kms:me-central-1:")
    assert all(len(v) == 3 for v in by_bucket.values()), by_bucket

    # Issue 24: the trail, its locked bucket and the detection services, in the zone's region.
    (trail,) = of_type(prod, "aws:cloudtrail/trail:Trail")
    assert trail["protect"] and trail["inputs"]["enableLogFileValidation"] is True
    assert trail["inputs"]["isMultiRegionTrail"] is False
    (lock,) = of_type(prod, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock["inputs"]["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 2557}
    assert len(of_type(prod, "aws:guardduty/detector:Detector")) == 1
    (status,) = of_type(prod, "aws:cfg/recorderStatus:RecorderStatus")
    assert status["inputs"]["isEnabled"] is True


def test_dev_relaxes_cost_never_encryption(records: dict) -> None:
    dev = records["dev"]
    assert len(of_type(dev, "aws:ec2/natGateway:NatGateway")) == 1
    assert not any(r["protect"] for r in dev["resources"])
    assert all(
        k["inputs"]["enableKeyRotation"]
        for k in of_type(dev, "aws:kms/key:Key")
        if k["inputs"]["customerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    )
    assert (
        len(
            of_type(
                dev,
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            )
        )
        == 5  # the data buckets, access logs and the audit trail's bucket
    )


def test_record_shape_is_stable(records: dict) -> None:
    record = records["prod-uae"]
    assert {"stack", "project", "config", "resources"} <= set(record)
    for r in record["resources"]:
        assert {
            "urn",
            "type",
            "name",
            "parent",
            "provider",
            "dependencies",
            "protect",
            "inputs",
        } <= set(r)
    json.dumps(record)  # plain data only


def test_bad_stack_writes_no_record(tmp_path: Path) -> None:
    with pytest.raises(SynthError) as info:
        synthesize("bad-residency", stacks_dir=FIXTURES, build_dir=tmp_path)
    assert {p.key for p in info.value.problems} == {
        "aws:region",
        "sovereign-ml:gpuPoolTaints",
        "sovereign-ml:gpuPoolMinSize",
    }
    assert not any(tmp_path.iterdir())


def test_cli_exits_2_and_names_all_three(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli.app",
            "synth",
            "bad-residency",
            "--stacks-dir",
            str(FIXTURES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    for key in ("aws:region", "gpuPoolTaints", "gpuPoolMinSize"):
        assert key in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_synth_hands_its_validated_config_to_the_program(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The stack file is parsed once per synth: the program builds from the config it is given."""
    from infra.config import stackfile

    def parse_again() -> None:
        raise AssertionError("the program parsed the engine config again")

    monkeypatch.setattr(stackfile, "from_engine", parse_again)
    assert synthesize("dev", build_dir=tmp_path, write=False).record["resources"]


def test_program_reads_the_engine_config_when_run_bare(records: dict) -> None:
    """`pulumi up` runs the program without a handed config: it reads the same from the engine."""
    import runpy

    from pulumi.runtime import config as runtime_config

    from infra.config.stackfile import engine_config, load_stack
    from infra.synth.runner import PROGRAM, run_recorded

    cfg, raw, secret_keys = load_stack("dev")
    runtime_config.set_all_config(engine_config(raw), sorted(secret_keys))
    try:
        recording = run_recorded(
            lambda: runpy.run_path(str(PROGRAM), run_name="__main__"),
            stack="dev",
            region=cfg.region,
        )
    finally:
        runtime_config.set_all_config({}, [])
    assert summary({"resources": recording.resources}) == summary(records["dev"])


def test_prod_uae_kubernetes_baseline_and_vault(records: dict) -> None:
    prod = records["prod-uae"]
    namespaces = {
        n["inputs"]["metadata"]["name"]: n for n in of_type(prod, "kubernetes:core/v1:Namespace")
    }
    tenants = prod["config"]["tenants"]
    assert {"kubeflow", "feature-store", "serving", "monitoring", "vault", *tenants} <= set(
        namespaces
    )
    for n in namespaces.values():
        assert (
            n["inputs"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        )
    deny = {
        p["inputs"]["metadata"]["namespace"]
        for p in of_type(prod, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if p["inputs"]["metadata"]["name"] == "default-deny"
    }
    assert set(namespaces) <= deny
    quotas = of_type(prod, "kubernetes:core/v1:ResourceQuota")
    assert {q["inputs"]["metadata"]["namespace"] for q in quotas} == set(tenants)
    assert all("requests.nvidia.com/gpu" in q["inputs"]["spec"]["hard"] for q in quotas)
    (plugin,) = of_type(prod, "kubernetes:apps/v1:DaemonSet")
    pod = plugin["inputs"]["spec"]["template"]["spec"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["nodeSelector"]["sovereign-ml/pool"] == "gpu"
    release = next(
        r
        for r in of_type(prod, "kubernetes:helm.sh/v3:Release")
        # prod-uae pulls from the zone's mirror (imageSource: mirror): the chart is an OCI path.
        if r["inputs"]["chart"] == f"oci://{MIRROR}/charts/vault"
    )
    assert "repositoryOpts" not in release["inputs"]
    assert (
        release["inputs"]["values"]["server"]["image"]["repository"] == f"{MIRROR}/hashicorp/vault"
    )
    ha = release["inputs"]["values"]["server"]["ha"]
    unseal = next(k for k in of_type(prod, "aws:kms/key:Key") if k["name"] == "keys-vault")
    assert ha["replicas"] == 3 and ha["raft"]["enabled"]
    assert 'seal "awskms"' in ha["raft"]["config"]
    assert unseal["id"] in ha["raft"]["config"]
    keys = of_type(prod, "vault:transit/secretBackendKey:SecretBackendKey")
    assert {k["inputs"]["name"] for k in keys} >= {f"artifacts-{t}" for t in tenants}
    assert len(of_type(prod, "vault:index/policy:Policy")) >= len(tenants)
    assert len(of_type(prod, "vault:kubernetes/authBackendRole:AuthBackendRole")) >= len(tenants)


def test_prod_uae_serving_rollout_with_analysis(records: dict) -> None:
    from policies.promotion import DEFAULT

    prod = records["prod-uae"]
    rollouts = [
        r for r in prod["resources"] if r["type"] == "kubernetes:argoproj.io/v1alpha1:Rollout"
    ]
    assert rollouts, "no Triton rollout"
    for ro in rollouts:
        spec = ro["inputs"]["spec"]
        pod = spec["template"]["spec"]
        triton = pod["containers"][0]
        assert triton["image"].startswith(f"{MIRROR}/nvidia/tritonserver:")
        assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
        assert pod["nodeSelector"]["sovereign-ml/pool"] == "gpu"
        weights = [s["setWeight"] for s in spec["strategy"]["canary"]["steps"] if "setWeight" in s]
        assert weights == list(DEFAULT.steps[:-1])
        assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    (analysis,) = [
        r
        for r in prod["resources"]
        if r["type"] == "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
    ]
    conditions = {m["name"]: m["failureCondition"] for m in analysis["inputs"]["spec"]["metrics"]}
    assert conditions["error-rate-sprt"] == f"result[0] >= {DEFAULT.error_bounds[1]!r}"
    assert conditions["latency-p99"] == "result[0] == -1"
    kinds = {r["type"] for r in prod["resources"]}
    assert "kubernetes:autoscaling/v2:HorizontalPodAutoscaler" in kinds
    assert "kubernetes:policy/v1:PodDisruptionBudget" in kinds
    # Enterprise production stays warm: no scale to zero. KEDA scales its GPU models on
    # requests and GPU utilisation from their floor, never to zero.
    assert not prod["config"]["serving_scale_to_zero"]
    scaled = [
        r for r in prod["resources"] if r["type"] == "kubernetes:keda.sh/v1alpha1:ScaledObject"
    ]
    assert scaled, "GPU models scale with KEDA"
    for so in scaled:
        spec = so["inputs"]["spec"]
        assert spec["minReplicaCount"] >= 1 and "idleReplicaCount" not in spec, so["urn"]


def test_prod_uae_monitoring_rules_and_drift_jobs(records: dict) -> None:
    prod = records["prod-uae"]
    (rules,) = [
        r
        for r in prod["resources"]
        if r["type"] == "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
    ]
    groups = rules["inputs"]["spec"]["groups"]
    alerts = {rule["alert"] for g in groups for rule in g["rules"] if "alert" in rule}
    assert {"ModelP99LatencyHigh", "ModelErrorRateHigh", "GpuSaturated", "FeatureDrift"} <= alerts
    assert {"ModelAvailabilityFastBurn", "ModelLatencySlowBurn"} <= alerts
    crons = of_type(prod, "kubernetes:batch/v1:CronJob")
    models = [m[0] for m in prod["config"]["served_models"]]
    assert {c["inputs"]["metadata"]["name"] for c in crons} == {f"drift-{m}" for m in models}
    args = crons[0]["inputs"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert "--kfp-endpoint" in args and "--threshold" in args
    monitors = [r for r in prod["resources"] if r["type"].endswith(":ServiceMonitor")]
    assert {m["inputs"]["metadata"]["name"] for m in monitors} == {"triton", "feature-server"}


def test_prod_uae_feature_server_online_store_and_irsa(records: dict) -> None:
    prod = records["prod-uae"]
    deployments = {
        d["inputs"]["metadata"]["name"]: d for d in of_type(prod, "kubernetes:apps/v1:Deployment")
    }
    assert "feast" in deployments
    (cache,) = of_type(prod, "aws:elasticache/replicationGroup:ReplicationGroup")
    assert cache["inputs"]["atRestEncryptionEnabled"] == "true"
    assert cache["inputs"]["transitEncryptionEnabled"] is True
    roles = [r for r in of_type(prod, "aws:iam/role:Role") if "feast-irsa" in r["name"]]
    assert len(roles) == 1
    assert "system:serviceaccount:feature-store:feast" in roles[0]["inputs"]["assumeRolePolicy"]
