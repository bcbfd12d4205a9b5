"""The cluster half of the lifecycle log and of pseudonymization, as the program declares it.

The audit bucket refuses unconditional puts and deletions under ``lifecycle/``; every role whose
pods append may reach its own namespace's chain only; every such namespace has the
``sovml-audit`` ConfigMap, which the register and encrypt steps and the drift jobs must take; the
stack has an HMAC_256 pseudonymization key the pipeline runners may MAC with (and only that); the
Vault identities that ingest may HMAC with their own transit key only; the dev stack's key is the
library's default alias; the lineage carries the ingest report.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.audit_trail import (
    AuditTrail,
    AuditTrailArgs,
    lifecycle_bucket_statements,
    lifecycle_writer_statements,
)
from components.encryption import Encryption, EncryptionArgs
from components.vault_layout import layout
from pipelines.audit import sink
from pipelines.privacy import tokens
from pipelines.training import images, packaging
from policies import lifecycle
from tests.component_mocks import AUDIT, HMAC_KEY, KEY, of_type, record

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
BUCKET = AUDIT.bucket_arn


def _statements(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A recorded policy's statements by Sid."""
    doc = json.loads(resource["inputs"]["policy"])
    return {s["Sid"]: s for s in doc["Statement"]}


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _no_wildcard_actions(statements: dict[str, dict[str, Any]]) -> None:
    for sid, st in statements.items():
        assert not [a for a in _actions(st) if "*" in a], sid


def _writer_expected(namespace: str) -> dict[str, dict[str, Any]]:
    return {
        "ListOwnLifecycleChain": {
            "Sid": "ListOwnLifecycleChain",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": BUCKET,
            "Condition": {"StringLike": {"s3:prefix": [f"lifecycle/{namespace}/*"]}},
        },
        "AppendOwnLifecycleChain": {
            "Sid": "AppendOwnLifecycleChain",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"{BUCKET}/lifecycle/{namespace}/*",
        },
        "LifecycleBucketKey": {
            "Sid": "LifecycleBucketKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": AUDIT.key_arn,
        },
    }


# --------------------------------------------------------------------------- shared facts


def test_the_sink_reads_the_variables_the_config_map_sets() -> None:
    assert (sink.BUCKET_ENV, sink.PREFIX_ENV) == (lifecycle.BUCKET_ENV, lifecycle.PREFIX_ENV)
    assert sink.DEFAULT_PREFIX == lifecycle.ROOT == "lifecycle"
    assert lifecycle.ENV_NAMES == ("SOVML_AUDIT_BUCKET", "SOVML_AUDIT_PREFIX", "AWS_REGION")


@pytest.mark.parametrize(
    "namespace", ["", "../kubeflow", "acme/*", "ACME", "a*", "-acme", "a" * 64]
)
def test_a_chain_prefix_cannot_widen_or_escape(namespace: str) -> None:
    with pytest.raises(ValueError, match=r"lifecycle chain namespace .*: allowed a DNS label"):
        lifecycle.chain_prefix(namespace)
    assert lifecycle.chain_prefix("acme-2") == "lifecycle/acme-2"


# --------------------------------------------------------------------------- the audit bucket


def test_the_audit_bucket_refuses_unconditional_puts_and_deletions_under_lifecycle() -> None:
    def build() -> AuditTrail:
        return AuditTrail(
            "audit",
            AuditTrailArgs(
                name_prefix="sovml-t",
                account_id="123456789012",
                logs_key_arn=KEY,
                access_logs_bucket="sovml-t-access-logs",
                object_lock_days=30,
                log_retention_days=30,
            ),
        )

    res = record(build)
    (bucket_policy,) = of_type(res, "aws:s3/bucketPolicy:BucketPolicy")
    st = _statements(bucket_policy)
    (bucket,) = of_type(res, "aws:s3/bucket:Bucket")
    arn = f"arn:aws:s3:::{bucket['inputs']['bucket']}"
    entries = f"{arn}/lifecycle/*"
    assert st["DenyUnconditionalLifecyclePut"] == {
        "Sid": "DenyUnconditionalLifecyclePut",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:PutObject",
        "Resource": entries,
        # Null true: the request has no If-None-Match header.
        "Condition": {"Null": {"s3:if-none-match": "true"}},
    }
    assert st["DenyLifecycleDeletion"]["Effect"] == "Deny"
    assert st["DenyLifecycleDeletion"]["Resource"] == entries
    assert _actions(st["DenyLifecycleDeletion"]) == ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    # CloudTrail and Config deliver under their own prefixes, which the denies do not touch.
    assert "/trail/AWSLogs/" in st["CloudTrailWrite"]["Resource"]
    assert "/config/AWSLogs/" in st["ConfigDelivery"]["Resource"]
    assert lifecycle_bucket_statements(BUCKET)[0]["Condition"] == {
        "Null": {"s3:if-none-match": "true"}
    }


# --------------------------------------------------------------------------- Kubeflow


@pytest.fixture(scope="module")
def kubeflow() -> list[dict[str, Any]]:
    from tests.component_mocks import ACCESS

    def build() -> Any:
        from components.kubeflow import Kubeflow, KubeflowArgs

        return Kubeflow(
            "kf",
            KubeflowArgs(
                namespace="kubeflow",
                name_prefix="p",
                artifacts_bucket="art",
                artifacts_bucket_arn="arn:aws:s3:::art",
                storage_key_arn=KEY,
                cluster_access=ACCESS,
                db_mode="in-cluster",
                tenants=["acme", "globex"],
                audit=AUDIT,
                pseudonymization_key_arn=HMAC_KEY,
            ),
        )

    return record(build)


def _role_policy(res: list[dict[str, Any]], namespace: str, sa: str) -> dict[str, dict]:
    (found,) = [
        r for r in of_type(res, ROLE_POLICY) if r["name"] == f"kf-{namespace}-{sa}-irsa-inline"
    ]
    return _statements(found)


@pytest.mark.parametrize("namespace", ["kubeflow", "acme", "globex"])
def test_each_pipeline_runner_appends_to_its_own_chain_only(
    kubeflow: list[dict[str, Any]], namespace: str
) -> None:
    st = _role_policy(kubeflow, namespace, "pipeline-runner")
    for sid, expected in _writer_expected(namespace).items():
        assert st[sid] == expected
    assert st["PseudonymizationMac"] == {
        "Sid": "PseudonymizationMac",
        "Effect": "Allow",
        "Action": "kms:GenerateMac",
        "Resource": HMAC_KEY,
    }
    _no_wildcard_actions(st)
    text = json.dumps(st)
    for other in {"kubeflow", "acme", "globex"} - {namespace}:
        assert f"lifecycle/{other}" not in text, other
    # The only statements that name the audit bucket are the three of its own chain.
    assert [s for s, v in st.items() if "audit-trail" in json.dumps(v)] == [
        "ListOwnLifecycleChain",
        "AppendOwnLifecycleChain",
    ]


def test_the_kfp_api_server_neither_appends_nor_macs(kubeflow: list[dict[str, Any]]) -> None:
    st = _role_policy(kubeflow, "kubeflow", "ml-pipeline")
    assert set(st) == {"ListItsPrefix", "ReadWriteItsPrefix", "SseKmsDataKeys"}


def test_each_pipeline_namespace_has_its_audit_config_map(kubeflow: list[dict[str, Any]]) -> None:
    maps = {
        m["inputs"]["metadata"]["namespace"]: m["inputs"]["data"]
        for m in of_type(kubeflow, CONFIG_MAP)
        if m["inputs"]["metadata"]["name"] == "sovml-audit"
    }
    assert maps == {
        ns: {
            "SOVML_AUDIT_BUCKET": AUDIT.bucket,
            "SOVML_AUDIT_PREFIX": f"lifecycle/{ns}",
            "AWS_REGION": "me-central-1",
        }
        for ns in ("kubeflow", "acme", "globex")
    }


def test_kubeflow_args_require_the_audit_sink_and_the_hmac_key() -> None:
    from components.kubeflow import KubeflowArgs

    with pytest.raises(TypeError, match="audit"):
        KubeflowArgs(  # type: ignore[call-arg]
            namespace="kubeflow",
            name_prefix="p",
            artifacts_bucket="a",
            artifacts_bucket_arn="a",
            storage_key_arn=KEY,
            cluster_access=None,
            pseudonymization_key_arn=HMAC_KEY,
        )


# --------------------------------------------------------------------------- drift jobs


@pytest.fixture(scope="module")
def monitoring() -> list[dict[str, Any]]:
    from components.monitoring import Monitoring
    from tests.promtool_rules import monitoring_args

    return record(lambda: Monitoring("mon", monitoring_args(gpu_enabled=False)))


def test_the_drift_role_appends_to_the_monitoring_chain_only(
    monitoring: list[dict[str, Any]],
) -> None:
    (drift,) = [r for r in of_type(monitoring, ROLE_POLICY) if "drift" in r["name"]]
    st = _statements(drift)
    for sid, expected in _writer_expected("monitoring").items():
        assert st[sid] == expected
    assert set(st) == {"ReadProfilesAndInferenceLogs", "DecryptSseKms", *_writer_expected("")}
    _no_wildcard_actions(st)


def test_the_drift_job_must_take_the_audit_config_map(monitoring: list[dict[str, Any]]) -> None:
    (cm,) = [
        m
        for m in of_type(monitoring, CONFIG_MAP)
        if m["inputs"]["metadata"]["name"] == "sovml-audit"
    ]
    assert cm["inputs"]["metadata"]["namespace"] == "monitoring"
    assert cm["inputs"]["data"]["SOVML_AUDIT_PREFIX"] == "lifecycle/monitoring"
    (job,) = of_type(monitoring, "kubernetes:batch/v1:CronJob")
    pod = job["inputs"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "sovml-audit", "optional": False}}]


# --------------------------------------------------------------------------- keys


def test_the_pseudonymization_key_is_a_protected_hmac_key_without_rotation() -> None:
    res = record(
        lambda: Encryption(
            "keys",
            EncryptionArgs(
                name_prefix="sovml-t",
                account_id="123456789012",
                purposes=("storage", "pseudonymization"),
            ),
        )
    )
    keys = {k["inputs"]["tags"]["purpose"]: k for k in of_type(res, "aws:kms/key:Key")}
    hmac_key, storage = keys["pseudonymization"], keys["storage"]
    assert hmac_key["inputs"]["customerMasterKeySpec"] == "HMAC_256"
    assert hmac_key["inputs"]["keyUsage"] == "GENERATE_VERIFY_MAC"
    # KMS rotates symmetric encryption keys only.
    assert hmac_key["inputs"]["enableKeyRotation"] is False
    assert "rotationPeriodInDays" not in hmac_key["inputs"]
    assert hmac_key["protect"] is True
    assert storage["inputs"]["enableKeyRotation"] is True
    assert storage["inputs"]["customerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    aliases = {a["inputs"]["name"] for a in of_type(res, "aws:kms/alias:Alias")}
    assert aliases == {"alias/sovml-t-storage", "alias/sovml-t-pseudonymization"}


def test_the_dev_stacks_hmac_key_is_the_librarys_default(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    for stack, rec in stack_records.items():
        aliases = {
            r["inputs"]["name"] for r in rec["resources"] if r["type"] == "aws:kms/alias:Alias"
        }
        assert f"alias/sovml-{stack}-pseudonymization" in aliases, stack
    assert tokens.DEFAULT_KMS_PSEUDONYM_KEY == "alias/sovml-dev-pseudonymization"


def test_the_program_wires_the_audit_bucket_into_every_appender(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    rec = stack_records["prod-uae"]
    (bucket,) = [
        r
        for r in rec["resources"]
        if r["type"] == "aws:s3/bucket:Bucket" and r["name"] == "audit-bucket"
    ]
    maps = {
        r["inputs"]["metadata"]["namespace"]: r["inputs"]["data"]
        for r in rec["resources"]
        if r["type"] == CONFIG_MAP and r["inputs"]["metadata"]["name"] == "sovml-audit"
    }
    expected = {"kubeflow", "monitoring", *rec["config"]["tenants"]}
    assert set(maps) == expected
    for ns, data in maps.items():
        assert data["SOVML_AUDIT_BUCKET"] == bucket["inputs"]["bucket"], ns
        assert data["SOVML_AUDIT_PREFIX"] == f"lifecycle/{ns}"
        assert data["AWS_REGION"] == rec["config"]["region"]


def test_writer_statements_refuse_a_bad_namespace() -> None:
    with pytest.raises(ValueError, match="allowed a DNS label"):
        lifecycle_writer_statements(AUDIT, "acme/../kubeflow")


# --------------------------------------------------------------------------- Vault


def test_only_the_identities_that_ingest_may_hmac_and_only_with_their_own_key() -> None:
    lay = layout(["acme", "globex"])
    hmac = {a.namespace: a.policy_hcl() for a in lay.access}
    for ns, key in (("kubeflow", "artifacts-platform"), ("acme", "artifacts-acme")):
        assert f'path "transit/hmac/{key}" {{ capabilities = ["update"] }}' in hmac[ns], ns
        assert hmac[ns].count("transit/hmac/") == 1
    for ns in ("serving", "feature-store", "monitoring"):
        assert "transit/hmac" not in hmac[ns], ns
    assert "*" not in "".join(
        line for text in hmac.values() for line in text.splitlines() if "transit/" in line
    )


# --------------------------------------------------------------------------- compiled pipeline


@pytest.fixture(scope="module")
def cluster_ir(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from pipelines.training import compilation

    out = tmp_path_factory.mktemp("ir") / "cluster.yaml"
    return list(yaml.safe_load_all(compilation.compile_pipeline("cluster", out).read_text()))


def test_register_and_encrypt_require_the_audit_config_map(cluster_ir: list[dict]) -> None:
    executors = cluster_ir[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in packaging.AUDIT_STEPS:
        (env,) = [
            e
            for e in executors[f"exec-{name}"].get("configMapAsEnv", [])
            if e["configMapName"] == "sovml-audit"
        ]
        assert env.get("optional", False) is False, name
        assert sorted((k["configMapKey"], k["envVar"]) for k in env["keyToEnv"]) == sorted(
            (k, k) for k in lifecycle.ENV_NAMES
        ), name
    others = set(executors) - {f"exec-{n}" for n in packaging.AUDIT_STEPS}
    assert not [e for e in others if "sovml-audit" in json.dumps(executors[e])]
    packages = {name: " ".join(images.STEPS[name].packages) for name in packaging.AUDIT_STEPS}
    assert all("boto3==" in p for p in packages.values()), packages


def test_ingest_is_told_which_hmac_key(cluster_ir: list[dict]) -> None:
    root = cluster_ir[0]["root"]["inputDefinitions"]["parameters"]
    assert root["pseudonymization_key"]["defaultValue"] == ""
    ingest = cluster_ir[0]["components"]["comp-ingest"]["inputDefinitions"]["parameters"]
    assert "pseudonymization_key" in ingest


def test_without_kfp_kubernetes_the_cluster_pipeline_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from pipelines.training import compilation

    monkeypatch.setattr(packaging, "kubernetes_extension", lambda: None)
    with pytest.warns(UserWarning), pytest.raises(
        RuntimeError, match="kfp-kubernetes is not installed: the register step cannot get the "
        "'sovml-audit' ConfigMap"
    ):  # fmt: skip
        compilation.compile_pipeline("cluster", tmp_path / "bare.yaml")
