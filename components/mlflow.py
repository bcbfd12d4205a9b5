"""The MLflow tracking server and model registry on the cluster: private, encrypted, least
privilege.

One Deployment of ``mlflow server`` (the inventory's ``mlflow`` image) in the pipelines'
namespace, reachable only through a ClusterIP Service and only from the namespaces that log runs
(the platform's pipelines and the tenants'): the namespace's default-deny stays, and one
NetworkPolicy admits exactly those namespaces to the server's port. Its backend store is RDS
PostgreSQL in the private subnets (storage, the RDS-managed master secret and Performance
Insights under the customer key, TLS forced, IAM authentication on, Multi-AZ and deletion
protection in production); its artifacts go to the models bucket under one prefix through an
IRSA role that can read, write and list that prefix only and use the bucket's key (every upload
is SSE-KMS: the bucket's default, and the server asks for it). The pods run under Pod Security
``restricted`` with a read-only root file system.

The database password never exists in config: RDS keeps it in Secrets Manager under the customer
key, and the cluster's secret operator syncs it into the Secret :data:`DB_SECRET` (keys
``username``, ``password``), as for Kubeflow's database.

The SMB tier (``db_mode="in-cluster"``, no RDS bill) keeps the backend store in SQLite on a
ReadWriteOnce volume of the KMS-encrypted StorageClass, mounted by the server's one pod (one
replica, ``Recreate``: SQLite has one writer): no database pod, image, password or network path
to protect; artifacts stay on the models bucket as above. README "Model registry" says why not
an in-cluster PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._aws import (
    TYPE_PREFIX,
    child,
    policy,
)
from components._irsa import ClusterAccess, irsa_service_account, prefix_statements
from components._k8s import (
    claim_spec,
    container,
    metadata,
    namespace_peer,
    pod_spec,
    pool_selector,
    tcp_ports,
)
from components._rds import Database, Engine, private_database
from policies import inventory

NAME = "mlflow"
"""Name of the Deployment, Service, service account and the pods' ``app.kubernetes.io/name``."""
PORT = 5000
"""The server's HTTP port (API, UI and the artifact proxy)."""
LABELS = {"app.kubernetes.io/name": NAME}
"""Labels selecting the server's pods."""
DB_SECRET = "mlflow-db"
"""Secret with the database's ``username`` and ``password`` (synced from Secrets Manager)."""
DB_NAME = "mlflow"
"""The database the server keeps its runs and registry in."""
DB_FILES = "/var/run/mlflow-db"
"""Where the pod sees :data:`DB_SECRET`'s keys as files."""
POSTGRES_VERSION = "16.6"
"""RDS PostgreSQL engine version (minor upgrades applied automatically)."""
POSTGRES = Engine(
    engine="postgres",
    version=POSTGRES_VERSION,
    protocol="PostgreSQL",
    port=5432,
    family="postgres16",
    parameters={"rds.force_ssl": "1", "log_connections": "1", "log_disconnections": "1"},
    parameters_description="TLS only, connections and statements logged",
    log_exports=("postgresql", "upgrade"),
)
"""The backend store's engine: TLS forced, connections logged."""
DB_MODES = ("rds", "in-cluster")
"""Where the backend store lives: RDS PostgreSQL, or SQLite on the pod's encrypted volume."""
STORE_PATH = "/var/lib/mlflow"
"""Where the in-cluster mode's encrypted volume (and ``mlflow.db`` on it) is mounted."""
STORE_CLAIM = "mlflow-store"
"""The in-cluster mode's PersistentVolumeClaim."""
_PREFIX_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-/")


@dataclass(frozen=True)
class MlflowArgs:
    """Inputs of :class:`Mlflow`."""

    namespace: str
    """Namespace of the server (the pipelines' namespace: its default-deny applies)."""
    name_prefix: str
    """Prefix of AWS names (DB identifier, groups)."""
    models_bucket: pulumi.Input[str]
    """Bucket of model artifacts (SSE-KMS)."""
    models_bucket_arn: pulumi.Input[str]
    """Its ARN."""
    storage_key_arn: pulumi.Input[str]
    """KMS key of the bucket."""
    db_key_arn: pulumi.Input[str]
    """KMS key of the RDS storage, its managed master secret and Performance Insights."""
    cluster_access: ClusterAccess
    """The cluster's IRSA identity provider."""
    vpc_id: pulumi.Input[str]
    """VPC of the database (``rds`` mode)."""
    vpc_cidr: str
    """Only source allowed to reach the database port (``rds`` mode)."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets of the database (``rds`` mode)."""
    client_namespaces: Sequence[str] = field(default_factory=list)
    """Namespaces whose pods may reach the server (pipelines log runs from there)."""
    artifacts_prefix: str = "mlflow/"
    """The server's folder in the bucket; its role reaches nothing else."""
    production: bool = True
    """Multi-AZ, deletion protection and final snapshots for the database."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where the image is pulled from (the zone's mirror in production)."""
    db_mode: str = "rds"
    """One of :data:`DB_MODES`: ``rds`` (enterprise) or ``in-cluster`` (SMB: SQLite on an
    encrypted volume, one replica)."""
    store_size: str = "10Gi"
    """The in-cluster mode's volume (runs and registry metadata only; artifacts are on S3)."""


class Mlflow(pulumi.ComponentResource):
    """The tracking server's database, IRSA account, Deployment, Service and NetworkPolicy.

    ``url`` is where pipelines in ``client_namespaces`` reach it (``SOVML_TRACKING_URI``).
    """

    url: str
    """The in-cluster URL of the server."""
    db_host: pulumi.Output[str] | None
    """The database's private address (None in the in-cluster mode: no database server)."""

    def __init__(
        self, name: str, args: MlflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        prefix = args.artifacts_prefix
        if not prefix.endswith("/") or prefix.startswith("/") or not set(prefix) <= _PREFIX_CHARS:
            raise ValueError(
                f"MlflowArgs.artifacts_prefix: {prefix!r}; allowed a folder like 'mlflow/' "
                "(lower-case letters, digits, '-', '/', ending in '/')"
            )
        if args.db_mode not in DB_MODES:
            raise ValueError(f"MlflowArgs.db_mode: {args.db_mode!r}; allowed {DB_MODES}")
        rds = args.db_mode == "rds"
        if rds and not (args.subnet_ids and args.vpc_cidr):
            raise ValueError(
                "MlflowArgs: subnet_ids and vpc_cidr are required (private RDS); allowed "
                "db_mode='in-cluster' without them"
            )
        super().__init__(f"{TYPE_PREFIX}:mlflow:Mlflow", name, None, opts)
        ns = args.namespace
        irsa_service_account(
            self,
            name,
            access=args.cluster_access,
            namespace=ns,
            service_account=NAME,
            inline_policy=policy(
                prefix_statements(args.models_bucket_arn, args.storage_key_arn, prefix)
            ),
        )
        self.db_host = self._database(name, args) if rds else None
        if not rds:
            # The store is the lineage of every registered version: kept through deletes in
            # production, like Kubeflow's registry volume.
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-store",
                metadata=metadata(STORE_CLAIM, ns),
                spec=claim_spec(args.store_size),
                opts=child(self, protect=args.production, retain_on_delete=args.production),
            )
        self._deployment(name, args)
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(NAME, ns),
            spec={
                "type": "ClusterIP",
                "selector": LABELS,
                "ports": [{"name": "http", "port": PORT, "targetPort": PORT}],
            },
            opts=child(self),
        )
        clients = sorted(set(args.client_namespaces) - {ns})
        k8s.networking.v1.NetworkPolicy(
            f"{name}-clients",
            metadata=metadata("allow-tracking-clients", ns),
            spec={
                "podSelector": {"matchLabels": LABELS},
                "policyTypes": ["Ingress", "Egress"],
                # The pipelines' own namespace reaches it through its allow-same-namespace. An
                # empty ``from`` would admit everyone: no clients, no rule.
                "ingress": (
                    [{"from": [namespace_peer(c) for c in clients], "ports": tcp_ports(PORT)}]
                    if clients
                    else []
                ),
                # The backend store: the RDS ENIs in the VPC (S3 rides allow-aws-endpoints); in
                # the in-cluster mode it is a file on the pod's volume: no egress at all here.
                "egress": (
                    [{"to": [{"ipBlock": {"cidr": args.vpc_cidr}}], "ports": tcp_ports(5432)}]
                    if rds
                    else []
                ),
            },
            opts=child(self),
        )
        # The clients' own namespaces deny egress by default: let their pods reach it.
        for client in clients:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-egress-{client}",
                metadata=metadata("allow-to-mlflow", client),
                spec={
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [namespace_peer(ns, LABELS)], "ports": tcp_ports(PORT)}],
                },
                opts=child(self),
            )
        self.url = f"http://{NAME}.{ns}.svc:{PORT}"
        self.register_outputs({"db_host": self.db_host} if rds else {})

    def _database(self, name: str, args: MlflowArgs) -> pulumi.Output[str]:
        return private_database(
            self,
            name,
            engine=POSTGRES,
            database=Database(
                identifier=f"{args.name_prefix}-mlflow",
                parameter_group=f"{args.name_prefix}-mlflow-pg16",
                store="MLflow backend DB",
                label="MLflow DB",
                username="mlflow_admin",
                allocated_storage=20,
                max_allocated_storage=100,
                db_name=DB_NAME,
            ),
            key_arn=args.db_key_arn,
            vpc_id=args.vpc_id,
            vpc_cidr=args.vpc_cidr,
            subnet_ids=args.subnet_ids,
            production=args.production,
        )

    def _deployment(self, name: str, args: MlflowArgs) -> None:
        rds = args.db_mode == "rds"
        # RDS: the URI is assembled in the container from the synced Secret's files and handed
        # over in MLflow's own variable: the password is in no manifest, environment entry,
        # argument list or config; verify-full checks the RDS certificate. In-cluster: a file.
        store = (
            f'export MLFLOW_BACKEND_STORE_URI="postgresql://$(cat {DB_FILES}/username):'
            f"$(cat {DB_FILES}/password)@${{DB_HOST}}:5432/{DB_NAME}"
            '?sslmode=verify-full&sslrootcert=system" && '
            if rds
            else f'export MLFLOW_BACKEND_STORE_URI="sqlite:///{STORE_PATH}/mlflow.db" && '
        )
        # SQLite has one writer: one gunicorn worker in one pod.
        workers = 2 if rds else 1
        serve = (
            f"{store}exec mlflow server --serve-artifacts --host 0.0.0.0 --port {PORT} "
            f"--workers {workers}"
        )
        env: dict[str, pulumi.Input[str]] = {"DB_HOST": self.db_host} if self.db_host else {}
        volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
        mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
        if rds:
            volumes.append({"name": "db", "secret": {"secretName": DB_SECRET}})
            mounts.append({"name": "db", "mountPath": DB_FILES, "readOnly": True})
        else:
            volumes.append({"name": "store", "persistentVolumeClaim": {"claimName": STORE_CLAIM}})
            mounts.append({"name": "store", "mountPath": STORE_PATH})
        server = container(
            "mlflow",
            args.sources.image("mlflow"),
            cpu="250m",
            memory="1Gi",
            cpu_limit="1",
            command=["/bin/sh", "-c"],
            args=[serve],
            env={
                **env,
                "MLFLOW_ARTIFACTS_DESTINATION": pulumi.Output.concat(
                    "s3://", args.models_bucket, "/", args.artifacts_prefix.rstrip("/")
                ),
                # Uploads ask for SSE-KMS explicitly, on top of the bucket's default.
                "MLFLOW_S3_UPLOAD_EXTRA_ARGS": '{"ServerSideEncryption": "aws:kms"}',
                "MLFLOW_DISABLE_TELEMETRY": "true",
                # The job runner (huey workers) serves features the platform does not use.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "HOME": "/tmp",
            },
            ports=[{"name": "http", "containerPort": PORT}],
            probe_path="/health",
            probe_port=PORT,
            volume_mounts=mounts,
        )
        spec: dict[str, Any] = {
            "replicas": 2 if args.production and rds else 1,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": {**LABELS, "app.kubernetes.io/part-of": "sovereign-ml"}},
                "spec": pod_spec(
                    [server],
                    service_account=NAME,
                    volumes=volumes,
                    node_selector=pool_selector("system"),
                    spread_label=LABELS,
                ),
            },
        }
        if not rds:
            # A rolling update would start a second pod on the same ReadWriteOnce volume.
            spec["strategy"] = {"type": "Recreate"}
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(NAME, args.namespace),
            spec=spec,
            opts=child(self),
        )
