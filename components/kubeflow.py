"""Kubeflow Pipelines with artifacts on S3 through IRSA and an encrypted, private metadata DB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._aws import (
    TYPE_PREFIX,
    child,
    policy,
    region_of,
)
from components._irsa import ClusterAccess, irsa_service_account, prefix_statements
from components._k8s import claim_spec, container, metadata, single_pod_store
from components._kustomize import Extra, image_transform
from components._rds import Database, Engine, private_database
from components.audit_trail import LifecycleSink, audit_config_map, lifecycle_writer_statements
from policies import inventory

KFP_VERSION = "2.4.0"
# Relative to the project root, where `pulumi up` runs the program; checked in beside it.
OVERLAY = Path("components") / "manifests" / "kfp"
MULTI_USER_OVERLAY = Path("components") / "manifests" / "kfp-multi-user"
"""Multi-user mode (profile controller, user from oauth2-proxy's header); see its file."""
MYSQL_IMAGE = inventory.image("mysql")
PROFILE_CONTROLLER = "kubeflow-pipelines-profile-controller"
"""KFP's multi-user profile controller (a Deployment running ``sync.py``): it creates each
profile namespace's artifact proxy and visualization server from image and tag variables."""
PROFILE_CONTROLLER_PODS = {"app": PROFILE_CONTROLLER}
"""Its pods' label (the upstream kustomization's commonLabels)."""
PROFILE_CONTROLLER_PORT = 8080
"""Its container port (Service port 80 -> 8080): metacontroller calls its ``sync`` hook there."""
METACONTROLLER_SA = "meta-controller-service"
"""metacontroller's service account in KFP's namespace (third-party/metacontroller): it runs the
profile controller as a DecoratorController, calling the hook for every profile namespace. Both
run with a sidecar (the multi-user overlay turns upstream's ``inject: "false"`` over)."""
PROFILE_IMAGES = {"FRONTEND": "kfp-frontend", "VISUALIZATION_SERVER": "kfp-visualization-server"}
"""``sync.py``'s ``<NAME>_IMAGE`` / ``<NAME>_TAG`` variables -> the inventory image they name."""
DB_MODES = ("rds", "in-cluster")


MYSQL = Engine(
    engine="mysql",
    version="8.0.40",
    protocol="MySQL",
    port=3306,
    family="mysql8.0",
    parameters={"require_secure_transport": "1"},
    parameters_description="TLS only",
    log_exports=("audit", "error", "general", "slowquery"),
)
"""The metadata DB's engine (KFP's MySQL 8 schema), TLS only."""


@dataclass
class KubeflowArgs:
    """Inputs of :class:`Kubeflow`."""

    namespace: str
    """Namespace of Kubeflow Pipelines (created by the baseline)."""
    name_prefix: str
    """Prefix of AWS names (DB identifier, groups)."""
    artifacts_bucket: pulumi.Input[str]
    """S3 bucket of pipeline artifacts (SSE-KMS)."""
    artifacts_bucket_arn: pulumi.Input[str]
    """Its ARN."""
    storage_key_arn: pulumi.Input[str]
    """KMS key of the bucket."""
    cluster_access: ClusterAccess
    """IRSA access to the cluster (its OIDC provider)."""
    db_mode: str = "rds"
    """``rds`` (enterprise: Multi-AZ, managed backups) or ``in-cluster`` (SMB: one MySQL pod on a
    KMS-encrypted EBS volume, no RDS bill)."""
    vpc_id: pulumi.Input[str] = ""
    """VPC of the RDS instance (rds mode)."""
    vpc_cidr: str = ""
    """Only source allowed to reach the database port (rds mode)."""
    subnet_ids: Sequence[pulumi.Input[str]] = field(default_factory=list)
    """Private subnets of the RDS instance (rds mode)."""
    db_key_arn: pulumi.Input[str] = ""
    """KMS key of the RDS storage, its managed master secret and Performance Insights."""
    tenants: Sequence[str] = field(default_factory=list)
    """Tenants that get a ``pipeline-runner`` service account in their namespace."""
    production: bool = True
    """Multi-AZ, deletion protection and final snapshots for the database."""
    audit: LifecycleSink = field(kw_only=True)
    """Where the pipeline runs append the lifecycle log: every ``pipeline-runner`` may append to
    its own namespace's chain only, and its namespace gets the ``sovml-audit`` ConfigMap."""
    pseudonymization_key_arn: pulumi.Input[str] = field(kw_only=True)
    """The stack's HMAC_256 KMS key: the ingest step's ``kms`` key service derives its
    pseudonymization key from it (``kms:GenerateMac``, nothing else)."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""
    profile_owners: Sequence[tuple[str, str]] = ()
    """``(tenant, owner e-mail)``: multi-user mode with one ``Profile`` per tenant namespace
    (stacks with single sign-on); empty keeps the standalone single-user install."""


class Kubeflow(pulumi.ComponentResource):
    """Kubeflow Pipelines (standalone, pinned) without MinIO: S3 via IRSA, private encrypted DB.

    The upstream manifests are applied from a kustomize overlay (``components/manifests/kfp``) that
    removes MinIO, MySQL, the install config and the service accounts; this component supplies
    them: ``pipeline-install-config`` pointing at the S3 artifacts bucket and the database,
    ``ml-pipeline`` and ``pipeline-runner`` service accounts with IRSA roles limited to the
    bucket, and a ``pipeline-runner`` per tenant namespace whose role can touch only
    ``tenants/<tenant>/`` in the bucket. Each ``pipeline-runner`` may also append to its own
    namespace's lifecycle chain in the audit bucket (``lifecycle/<namespace>/``) and MAC with the
    pseudonymization key; its namespace gets the ``sovml-audit`` ConfigMap the register and
    encrypt steps require. The metadata database is RDS MySQL (storage, master
    secret and Performance Insights under the customer key, TLS required, private subnets only,
    IAM authentication, Multi-AZ and deletion protection in production) or, for SMB stacks, one
    MySQL pod on the KMS-encrypted gp3 StorageClass. The artifact store is S3 in the AWS
    provider's region.
    """

    db_host: pulumi.Output[str]

    def __init__(
        self, name: str, args: KubeflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.db_mode not in DB_MODES:
            raise ValueError(f"KubeflowArgs.db_mode: {args.db_mode}; allowed {DB_MODES}")
        if args.db_mode == "rds" and not (args.subnet_ids and args.vpc_cidr and args.db_key_arn):
            raise ValueError(
                "KubeflowArgs: rds mode needs subnet_ids, vpc_cidr and db_key_arn; allowed "
                "db_mode='in-cluster' without them"
            )
        owners = dict(args.profile_owners)
        if args.profile_owners and set(owners) != set(args.tenants):
            raise ValueError(
                f"KubeflowArgs.profile_owners: {sorted(owners)}; allowed one owner per tenant "
                f"{sorted(args.tenants)}"
            )
        super().__init__(f"{TYPE_PREFIX}:kubeflow:Kubeflow", name, None, opts)
        ns = args.namespace
        accounts = [(ns, "ml-pipeline", ""), (ns, "pipeline-runner", "")]
        accounts += [(t, "pipeline-runner", f"tenants/{t}/") for t in args.tenants]
        for namespace, sa, prefix in accounts:
            statements = prefix_statements(args.artifacts_bucket_arn, args.storage_key_arn, prefix)
            if sa == "pipeline-runner":
                statements += runner_statements(args, namespace)
            irsa_service_account(
                self,
                f"{name}-{namespace}-{sa}",
                account_name=f"{name}-{namespace}-{sa}",
                access=args.cluster_access,
                namespace=namespace,
                service_account=sa,
                inline_policy=policy(statements),
            )
        for namespace in (ns, *args.tenants):
            audit_config_map(f"{name}-{namespace}-audit", args.audit, namespace, child(self))

        if args.db_mode == "rds":
            self.db_host = self._rds(name, args)
        else:
            self.db_host = self._in_cluster_db(name, args)

        config = k8s.core.v1.ConfigMap(
            f"{name}-install-config",
            metadata=metadata("pipeline-install-config", ns),
            data=install_config(args, self.db_host, region_of(self)),
            opts=child(self),
        )
        # The training pipeline's model registry (pipelines/training/images.REGISTRY_PVC): its
        # evaluate/export/register/encrypt steps run one after another, so one encrypted
        # ReadWriteOnce volume serves them; it is the lineage of every model, so it is kept.
        k8s.core.v1.PersistentVolumeClaim(
            f"{name}-model-registry",
            metadata=metadata("model-registry", ns),
            spec=claim_spec("20Gi"),
            opts=child(self, protect=args.production, retain_on_delete=args.production),
        )
        overlay = MULTI_USER_OVERLAY if owners else OVERLAY
        # Every image of the upstream manifests is rewritten to the stack's source (the zone's
        # mirror in production), and one missing from the inventory is refused.
        transform = image_transform(args.sources, overlay.name, profile_images(args.sources))
        kfp = k8s.kustomize.v2.Directory(
            f"{name}-kfp",
            directory=str(overlay),
            namespace=ns,
            opts=child(self, depends_on=[config], transforms=[transform]),
        )
        for tenant, owner in owners.items():
            # The profile controller adopts the baseline's tenant namespace only when its
            # `owner` annotation names the same user (README: Zero trust, single sign-on).
            k8s.apiextensions.CustomResource(
                f"{name}-profile-{tenant}",
                api_version="kubeflow.org/v1",
                kind="Profile",
                metadata={"name": tenant, "labels": {"app.kubernetes.io/part-of": "sovereign-ml"}},
                spec={"owner": {"kind": "User", "name": owner}},
                opts=child(self, depends_on=[kfp]),
            )
        self.register_outputs({"db_host": self.db_host})

    def _rds(self, name: str, args: KubeflowArgs) -> pulumi.Output[str]:
        return private_database(
            self,
            name,
            engine=MYSQL,
            database=Database(
                identifier=f"{args.name_prefix}-kfp",
                parameter_group=f"{args.name_prefix}-kfp-mysql8",
                store="Kubeflow metadata DB",
                label="Kubeflow DB",
                username="kfp_admin",
                allocated_storage=50,
                max_allocated_storage=200,
            ),
            key_arn=args.db_key_arn,
            vpc_id=args.vpc_id,
            vpc_cidr=args.vpc_cidr,
            subnet_ids=args.subnet_ids,
            production=args.production,
        )

    def _in_cluster_db(self, name: str, args: KubeflowArgs) -> pulumi.Output[str]:
        mysql = container(
            "mysql",
            args.sources.image("mysql"),
            cpu="250m",
            memory="1Gi",
            cpu_limit="1",
            args=["--require-secure-transport=ON", "--datadir=/var/lib/mysql/data"],
            ports=[{"name": "mysql", "containerPort": 3306}],
            probe_port=3306,
            volume_mounts=[
                {"name": "data", "mountPath": "/var/lib/mysql"},
                {"name": "run", "mountPath": "/var/run/mysqld"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            uid=10001,
        )
        # The root password comes from the `mysql-secret` Secret, synced from Vault KV
        # (secret/kubeflow/mysql) by the cluster's secret operator; it is never stack config.
        mysql["env"] = [{"name": "MYSQL_ROOT_PASSWORD_FILE", "value": "/secrets/password"}]
        mysql["volumeMounts"].append({"name": "secrets", "mountPath": "/secrets", "readOnly": True})
        return single_pod_store(
            f"{name}-mysql",
            parent=self,
            app="kfp-mysql",
            namespace=args.namespace,
            server=mysql,
            port=("mysql", 3306),
            volumes=[
                *({"name": n, "emptyDir": {}} for n in ("run", "tmp")),
                {"name": "secrets", "secret": {"secretName": "mysql-secret"}},
            ],
            storage="20Gi",
            protect=args.production,
        )


def _name_and_tag(reference: str, version: str) -> tuple[str, str]:
    # sync.py joins `<image>:<tag>`, so a digest cannot ride along: the mirror's tag it is.
    name = reference.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last.split(":", 1)[1]) - 1]
    return name, version


def profile_images(sources: inventory.Sources) -> Extra:
    """The transform step that points KFP's profile controller at the stack's source for the
    per-profile pods it creates (``<NAME>_IMAGE`` and ``<NAME>_TAG``, by tag); other objects
    pass unchanged."""

    def extra(type_: str, props: dict[str, Any]) -> dict[str, Any]:
        meta = props.get("metadata") or {}
        if type_ != "kubernetes:apps/v1:Deployment" or meta.get("name") != PROFILE_CONTROLLER:
            return props
        wanted: dict[str, str] = {}
        for var, ident in PROFILE_IMAGES.items():
            image, tag = _name_and_tag(
                sources.image(ident), inventory.entry(ident, "image").version
            )
            wanted |= {f"{var}_IMAGE": image, f"{var}_TAG": tag}
        spec = props["spec"]["template"]["spec"]
        containers = []
        for c in spec.get("containers") or []:
            env = [v for v in c.get("env") or [] if v.get("name") not in wanted]
            containers.append(
                {**c, "env": env + [{"name": k, "value": v} for k, v in wanted.items()]}
            )
        template = {**props["spec"]["template"], "spec": {**spec, "containers": containers}}
        return {**props, "spec": {**props["spec"], "template": template}}

    return extra


def prefix_policy(
    bucket_arn: pulumi.Input[str], key_arn: pulumi.Input[str], prefix: str
) -> pulumi.Output[str]:
    """Read, write and list only ``prefix`` (the whole bucket for ``""``), and its SSE-KMS keys."""
    return policy(prefix_statements(bucket_arn, key_arn, prefix))


def runner_statements(args: KubeflowArgs, namespace: str) -> list[dict[str, Any]]:
    """What a pipeline run does beyond its artifacts: append to its namespace's lifecycle chain,
    and MAC with the pseudonymization key (the ingest step's ``kms`` backend)."""
    return [
        *lifecycle_writer_statements(args.audit, namespace),
        {
            "Sid": "PseudonymizationMac",
            "Effect": "Allow",
            "Action": "kms:GenerateMac",
            "Resource": args.pseudonymization_key_arn,
        },
    ]


def install_config(
    args: KubeflowArgs, db_host: pulumi.Input[str], region: pulumi.Input[str]
) -> dict[str, Any]:
    """``pipeline-install-config``: the MySQL database at ``db_host``, artifacts on S3."""
    return {
        "appName": "pipeline",
        "appVersion": KFP_VERSION,
        "dbHost": db_host,
        "dbPort": "3306",
        "dbType": "mysql",
        "mlmdDb": "metadb",
        "cacheDb": "cachedb",
        "pipelineDb": "mlpipeline",
        "bucketName": args.artifacts_bucket,
        "defaultPipelineRoot": pulumi.Output.concat("s3://", args.artifacts_bucket, "/pipelines"),
        "ObjectStoreConfigHost": pulumi.Output.concat("s3.", region, ".amazonaws.com"),
        "ObjectStoreConfigRegion": region,
        "ObjectStoreConfigSecure": "true",
        "autoUpdatePipelineDefaultVersion": "true",
        "cronScheduleTimezone": "UTC",
        "ConMaxLifeTime": "120s",
    }
