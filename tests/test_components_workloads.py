"""Vault, Kubeflow, the feature store and KEDA under the recording mocks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.component_mocks import (
    ACCESS,
    AUDIT,
    HMAC_KEY,
    KEY,
    children_named_after,
    of_type,
    record,
    with_provider,
)


def test_vault_release_is_ha_raft_with_kms_seal() -> None:
    from components.vault import Vault, VaultArgs

    unseal = "arn:aws:kms:me-central-1:123456789012:key/unseal"
    res = record(
        lambda: Vault(
            "vault",
            VaultArgs(
                namespace="vault",
                unseal_key_arn=unseal,
                cluster_access=ACCESS,
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


def _kubeflow(opts: Any = None, **kw: Any) -> Any:
    from components.kubeflow import Kubeflow, KubeflowArgs

    args = dict(
        namespace="kubeflow", name_prefix="p", artifacts_bucket="art",
        artifacts_bucket_arn="arn:aws:s3:::art", storage_key_arn=KEY,
        cluster_access=ACCESS,
        vpc_id="vpc-1", vpc_cidr="10.40.0.0/16", subnet_ids=["s1", "s2"], db_key_arn=KEY,
        tenants=["acme"], audit=AUDIT, pseudonymization_key_arn=HMAC_KEY,
    )  # fmt: skip
    return Kubeflow("kf", KubeflowArgs(**{**args, **kw}), opts)


def test_kubeflow_uses_s3_via_irsa_and_a_private_encrypted_rds() -> None:
    res = record(_kubeflow)
    (db,) = of_type(res, "aws:rds/instance:Instance")
    i = db["inputs"]
    assert i["storageEncrypted"] and i["kmsKeyId"] == KEY and not i["publiclyAccessible"]
    assert i["manageMasterUserPassword"] and "password" not in i
    assert db["protect"] and i["multiAz"] and i["deletionProtection"]
    (params,) = of_type(res, "aws:rds/parameterGroup:ParameterGroup")
    assert {"name": "require_secure_transport", "value": "1"} in params["inputs"]["parameters"]
    (cfg,) = [
        c
        for c in of_type(res, "kubernetes:core/v1:ConfigMap")
        if c["inputs"]["metadata"]["name"] == "pipeline-install-config"
    ]
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
        cluster_access=ACCESS,
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


def test_vault_and_kubeflow_take_the_region_from_their_aws_provider() -> None:
    from components.vault import Vault, VaultArgs

    region = "eu-central-1"
    res = record(
        with_provider(
            region,
            lambda opts: Vault(
                "vault",
                VaultArgs(namespace="vault", unseal_key_arn=KEY, cluster_access=ACCESS),
                opts,
            ),
        )
    )
    (release,) = of_type(res, "kubernetes:helm.sh/v3:Release")
    server = release["inputs"]["values"]["server"]
    assert server["extraEnvironmentVars"]["AWS_REGION"] == region
    assert f'region     = "{region}"' in server["ha"]["raft"]["config"]
    res = record(with_provider(region, lambda opts: _kubeflow(opts=opts)))
    (cfg,) = [
        c
        for c in of_type(res, "kubernetes:core/v1:ConfigMap")
        if c["inputs"]["metadata"]["name"] == "pipeline-install-config"
    ]
    assert cfg["inputs"]["data"]["ObjectStoreConfigRegion"] == region
    assert cfg["inputs"]["data"]["ObjectStoreConfigHost"] == f"s3.{region}.amazonaws.com"
