"""components/mlflow.py under the synth's mocks: private encrypted RDS, prefix-scoped IRSA,
restricted pods, ClusterIP only, default-deny with explicit allows."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.mlflow import DB_SECRET, Mlflow, MlflowArgs
from tests.component_mocks import ACCESS, KEY, children_named_after, of_type, record

BUCKET_ARN = "arn:aws:s3:::sovml-t-models"


def _mlflow(**kw: Any) -> Mlflow:
    args: dict[str, Any] = {
        "namespace": "kubeflow",
        "name_prefix": "sovml-t",
        "models_bucket": "sovml-t-models",
        "models_bucket_arn": BUCKET_ARN,
        "storage_key_arn": KEY,
        "db_key_arn": KEY,
        "cluster_access": ACCESS,
        "vpc_id": "vpc-1",
        "vpc_cidr": "10.40.0.0/16",
        "subnet_ids": ["subnet-a", "subnet-b"],
        "client_namespaces": ["risk-analytics"],
    }
    return Mlflow("mlflow", MlflowArgs(**{**args, **kw}))


def _one(res: list[dict], typ: str) -> dict:
    found = of_type(res, typ)
    assert len(found) == 1, [r["urn"] for r in found]
    return found[0]


def test_database_is_private_encrypted_tls_and_protected() -> None:
    res = record(_mlflow)
    children_named_after(res, "sovereign-ml:mlflow:Mlflow", "mlflow")
    db = _one(res, "aws:rds/instance:Instance")["inputs"]
    assert db["engine"] == "postgres" and db["storageEncrypted"] is True
    assert db["kmsKeyId"] == KEY and db["masterUserSecretKmsKeyId"] == KEY
    assert db["manageMasterUserPassword"] is True and "password" not in db
    assert db["publiclyAccessible"] is False and db["multiAz"] is True
    assert db["deletionProtection"] is True and db["iamDatabaseAuthenticationEnabled"] is True
    params = _one(res, "aws:rds/parameterGroup:ParameterGroup")["inputs"]["parameters"]
    assert {"name": "rds.force_ssl", "value": "1"} in params


def test_artifact_role_reaches_only_its_prefix() -> None:
    res = record(_mlflow)
    (role_policy,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    assert role_policy["name"] == "mlflow-irsa-inline"
    statements = {s["Sid"]: s for s in json.loads(role_policy["inputs"]["policy"])["Statement"]}
    assert len(statements) == 3
    assert statements["ReadWriteItsPrefix"]["Resource"] == f"{BUCKET_ARN}/mlflow/*"
    assert statements["ListItsPrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["mlflow/*"]}}
    assert statements["SseKmsDataKeys"]["Resource"] == KEY


def test_pods_are_restricted_cluster_ip_only_and_the_secret_is_a_file() -> None:
    res = record(_mlflow)
    deployment = _one(res, "kubernetes:apps/v1:Deployment")["inputs"]
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    security = server["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "db", "secret": {"secretName": DB_SECRET}} in pod["volumes"]
    assert not any("valueFrom" in e for e in server["env"])  # no secret in the environment
    assert "password" not in json.dumps(server["env"]).lower()
    service = _one(res, "kubernetes:core/v1:Service")["inputs"]["spec"]
    assert service["type"] == "ClusterIP"
    assert not of_type(res, "kubernetes:networking.k8s.io/v1:Ingress")


def _policies(res: list[dict]) -> dict[tuple[str, str], dict]:
    return {
        (r["inputs"]["metadata"]["namespace"], r["inputs"]["metadata"]["name"]): r["inputs"]["spec"]
        for r in of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }


def test_network_admits_only_the_client_namespaces() -> None:
    policies = _policies(record(_mlflow))
    server = policies[("kubeflow", "allow-tracking-clients")]
    assert server["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "risk-analytics"}
                    }
                }
            ],
            "ports": [{"protocol": "TCP", "port": 5000}],
        }
    ]
    assert server["egress"][0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert ("risk-analytics", "allow-to-mlflow") in policies


def test_no_clients_means_no_ingress_rule_not_an_open_one() -> None:
    """An ingress rule with an empty ``from`` admits every source: it must not exist."""
    policies = _policies(record(lambda: _mlflow(client_namespaces=[])))
    assert policies[("kubeflow", "allow-tracking-clients")]["ingress"] == []
    assert set(policies) == {("kubeflow", "allow-tracking-clients")}


@pytest.mark.parametrize("prefix", ["", "/mlflow/", "mlflow", "ML/", "a*/"])
def test_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="artifacts_prefix"):
        record(lambda: _mlflow(artifacts_prefix=prefix))


def _in_cluster(**kw: Any) -> Mlflow:
    """The SMB mode: no RDS arguments at all."""
    return _mlflow(db_mode="in-cluster", vpc_id="", vpc_cidr="", subnet_ids=[], **kw)


def test_in_cluster_store_is_sqlite_on_an_encrypted_kept_volume() -> None:
    """SMB: no RDS, no database Secret; SQLite on a claim of the encrypted StorageClass, one
    replica replaced (not rolled: one writer on a ReadWriteOnce volume), kept in production."""
    from components._k8s import ENCRYPTED_STORAGE_CLASS
    from components.mlflow import STORE_CLAIM, STORE_PATH

    res = record(_in_cluster)
    assert not of_type(res, "aws:rds/instance:Instance")
    assert not of_type(res, "aws:rds/parameterGroup:ParameterGroup")
    claim = _one(res, "kubernetes:core/v1:PersistentVolumeClaim")
    assert claim["inputs"]["metadata"]["name"] == STORE_CLAIM
    assert claim["inputs"]["spec"]["storageClassName"] == ENCRYPTED_STORAGE_CLASS
    assert claim["inputs"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["protect"] is True
    deployment = _one(res, "kubernetes:apps/v1:Deployment")["inputs"]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}
    pod = deployment["template"]["spec"]
    (server,) = pod["containers"]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "store", "persistentVolumeClaim": {"claimName": STORE_CLAIM}} in pod["volumes"]
    assert not any("secret" in v for v in pod["volumes"])
    assert {"name": "store", "mountPath": STORE_PATH} in server["volumeMounts"]
    (command,) = server["args"]
    assert f'MLFLOW_BACKEND_STORE_URI="sqlite:///{STORE_PATH}/mlflow.db"' in command
    assert command.endswith("--workers 1") and "postgresql" not in command
    assert "DB_HOST" not in {e["name"] for e in server["env"]}
    # The artifacts still go to the models bucket, SSE-KMS, through the prefix-scoped role.
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://sovml-t-models/mlflow"
    assert env["MLFLOW_S3_UPLOAD_EXTRA_ARGS"] == '{"ServerSideEncryption": "aws:kms"}'


def test_in_cluster_store_opens_no_egress_and_dev_volume_is_not_protected() -> None:
    """No database to reach: the server's policy allows no egress beyond the namespace's own
    allows; a non-production claim may be deleted with the stack."""
    res = record(lambda: _in_cluster(production=False))
    policies = {
        p["inputs"]["metadata"]["name"]: p["inputs"]["spec"]
        for p in of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    assert policies["allow-tracking-clients"]["egress"] == []
    assert policies["allow-tracking-clients"]["policyTypes"] == ["Ingress", "Egress"]
    assert _one(res, "kubernetes:core/v1:PersistentVolumeClaim")["protect"] is False


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"db_mode": "sqlite"}, "MlflowArgs.db_mode: 'sqlite'; allowed ('rds', 'in-cluster')"),
        ({"subnet_ids": []}, "subnet_ids and vpc_cidr are required (private RDS)"),
        ({"vpc_cidr": ""}, "subnet_ids and vpc_cidr are required (private RDS)"),
    ],
)
def test_bad_db_mode_or_rds_without_network_is_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        record(lambda: _mlflow(**kw))
