"""Kubeflow Pipelines with artifacts on S3 through IRSA and an encrypted, private metadata DB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child, irsa_role, policy, service_trust
from components._k8s import container, metadata, pod_spec

KFP_VERSION = "2.4.0"
# Relative to the project root, where `pulumi up` runs the program; checked in beside it.
OVERLAY = Path("components") / "manifests" / "kfp"
MYSQL_IMAGE = "mysql:8.0.40"
DB_MODES = ("rds", "in-cluster")


@dataclass
class KubeflowArgs:
    """Inputs of :class:`Kubeflow`."""

    namespace: str
    """Namespace of Kubeflow Pipelines (created by the baseline)."""
    name_prefix: str
    """Prefix of AWS names (DB identifier, groups)."""
    region: str
    """Region of the artifact store."""
    artifacts_bucket: pulumi.Input[str]
    """S3 bucket of pipeline artifacts (SSE-KMS)."""
    artifacts_bucket_arn: pulumi.Input[str]
    """Its ARN."""
    storage_key_arn: pulumi.Input[str]
    """KMS key of the bucket."""
    oidc_provider_arn: pulumi.Input[str]
    """IRSA OIDC provider."""
    oidc_issuer_url: pulumi.Input[str]
    """Its issuer URL."""
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


class Kubeflow(pulumi.ComponentResource):
    """Kubeflow Pipelines (standalone, pinned) without MinIO: S3 via IRSA, private encrypted DB.

    The upstream manifests are applied from a kustomize overlay (``components/manifests/kfp``) that
    removes MinIO, MySQL, the install config and the service accounts; this component supplies
    them: ``pipeline-install-config`` pointing at the S3 artifacts bucket and the database,
    ``ml-pipeline`` and ``pipeline-runner`` service accounts with IRSA roles limited to the
    bucket, and a ``pipeline-runner`` per tenant namespace whose role can touch only
    ``tenants/<tenant>/`` in the bucket. The metadata database is RDS MySQL (storage, master
    secret and Performance Insights under the customer key, TLS required, private subnets only,
    IAM authentication, Multi-AZ and deletion protection in production) or, for SMB stacks, one
    MySQL pod on the KMS-encrypted gp3 StorageClass.
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
        super().__init__(f"{TYPE_PREFIX}:kubeflow:Kubeflow", name, None, opts)
        ns = args.namespace
        bucket_arn = pulumi.Output.from_input(args.artifacts_bucket_arn)

        def bucket_policy(prefix: str) -> pulumi.Output[str]:
            return policy(
                [
                    {
                        "Sid": "ListItsPrefix",
                        "Effect": "Allow",
                        "Action": "s3:ListBucket",
                        "Resource": args.artifacts_bucket_arn,
                        "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
                    },
                    {
                        "Sid": "ReadWriteItsPrefix",
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        "Resource": bucket_arn.apply(lambda a: f"{a}/{prefix}*"),
                    },
                    {
                        "Sid": "SseKmsDataKeys",
                        "Effect": "Allow",
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                        "Resource": args.storage_key_arn,
                    },
                ]
            )

        accounts = [(ns, "ml-pipeline", ""), (ns, "pipeline-runner", "")]
        accounts += [(t, "pipeline-runner", f"tenants/{t}/") for t in args.tenants]
        for namespace, sa, prefix in accounts:
            role = irsa_role(
                f"{name}-{namespace}-{sa}-irsa",
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer_url=args.oidc_issuer_url,
                namespace=namespace,
                service_account=sa,
                inline_policy=bucket_policy(prefix),
                opts=child(self),
            )
            k8s.core.v1.ServiceAccount(
                f"{name}-{namespace}-{sa}",
                metadata={
                    **metadata(sa, namespace),
                    "annotations": {"eks.amazonaws.com/role-arn": role.arn},
                },
                opts=child(self),
            )

        if args.db_mode == "rds":
            self.db_host = self._rds(name, args)
        else:
            self.db_host = self._in_cluster_db(name, args)

        config = k8s.core.v1.ConfigMap(
            f"{name}-install-config",
            metadata=metadata("pipeline-install-config", ns),
            data={
                "appName": "pipeline",
                "appVersion": KFP_VERSION,
                "dbHost": self.db_host,
                "dbPort": "3306",
                "dbType": "mysql",
                "mlmdDb": "metadb",
                "cacheDb": "cachedb",
                "pipelineDb": "mlpipeline",
                "bucketName": args.artifacts_bucket,
                "defaultPipelineRoot": pulumi.Output.concat(
                    "s3://", args.artifacts_bucket, "/pipelines"
                ),
                "ObjectStoreConfigHost": f"s3.{args.region}.amazonaws.com",
                "ObjectStoreConfigRegion": args.region,
                "ObjectStoreConfigSecure": "true",
                "autoUpdatePipelineDefaultVersion": "true",
                "cronScheduleTimezone": "UTC",
                "ConMaxLifeTime": "120s",
            },
            opts=child(self),
        )
        # The training pipeline's model registry (pipelines/training/images.REGISTRY_PVC): its
        # evaluate/export/register/encrypt steps run one after another, so one encrypted
        # ReadWriteOnce volume serves them; it is the lineage of every model, so it is kept.
        k8s.core.v1.PersistentVolumeClaim(
            f"{name}-model-registry",
            metadata=metadata("model-registry", ns),
            spec={
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "gp3-encrypted",
                "resources": {"requests": {"storage": "20Gi"}},
            },
            opts=child(self, protect=args.production, retain_on_delete=args.production),
        )
        k8s.kustomize.v2.Directory(
            f"{name}-kfp",
            directory=str(OVERLAY),
            namespace=ns,
            opts=child(self, depends_on=[config]),
        )
        self.register_outputs({"db_host": self.db_host})

    def _rds(self, name: str, args: KubeflowArgs) -> pulumi.Output[str]:
        sg = aws.ec2.SecurityGroup(
            f"{name}-db-sg",
            description="Kubeflow metadata DB: MySQL from inside the VPC only",
            vpc_id=args.vpc_id,
            ingress=[
                {
                    "description": "MySQL from the VPC (pods via the VPC CNI)",
                    "protocol": "tcp",
                    "from_port": 3306,
                    "to_port": 3306,
                    "cidr_blocks": [args.vpc_cidr],
                }
            ],
            opts=child(self),
        )
        subnets = aws.rds.SubnetGroup(
            f"{name}-db-subnets",
            name=f"{args.name_prefix}-kfp",
            subnet_ids=list(args.subnet_ids),
            description="Private subnets of the Kubeflow metadata DB",
            opts=child(self),
        )
        params = aws.rds.ParameterGroup(
            f"{name}-db-params",
            name=f"{args.name_prefix}-kfp-mysql8",
            family="mysql8.0",
            description="TLS only",
            parameters=[{"name": "require_secure_transport", "value": "1"}],
            opts=child(self),
        )
        monitoring = aws.iam.Role(
            f"{name}-db-monitoring-role",
            assume_role_policy=service_trust("monitoring.rds.amazonaws.com"),
            description="RDS enhanced monitoring for the Kubeflow DB",
            opts=child(self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-db-monitoring-policy",
            role=monitoring.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            opts=child(self),
        )
        db = aws.rds.Instance(
            f"{name}-db",
            identifier=f"{args.name_prefix}-kfp",
            engine="mysql",
            engine_version="8.0.40",
            instance_class="db.t4g.medium",
            allocated_storage=50,
            max_allocated_storage=200,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=args.db_key_arn,
            username="kfp_admin",
            # The password never exists in config: RDS keeps it in Secrets Manager under our key.
            manage_master_user_password=True,
            master_user_secret_kms_key_id=args.db_key_arn,
            iam_database_authentication_enabled=True,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[sg.id],
            parameter_group_name=params.name,
            publicly_accessible=False,
            multi_az=args.production,
            backup_retention_period=14 if args.production else 3,
            copy_tags_to_snapshot=True,
            deletion_protection=args.production,
            skip_final_snapshot=not args.production,
            final_snapshot_identifier=f"{args.name_prefix}-kfp-final" if args.production else None,
            auto_minor_version_upgrade=True,
            enabled_cloudwatch_logs_exports=["audit", "error", "general", "slowquery"],
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.db_key_arn,
            monitoring_interval=60,
            monitoring_role_arn=monitoring.arn,
            ca_cert_identifier="rds-ca-rsa2048-g1",
            opts=child(self, protect=args.production, retain_on_delete=args.production),
        )
        return db.address

    def _in_cluster_db(self, name: str, args: KubeflowArgs) -> pulumi.Output[str]:
        ns = args.namespace
        labels = {"app.kubernetes.io/name": "kfp-mysql"}
        mysql = container(
            "mysql",
            MYSQL_IMAGE,
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
        k8s.apps.v1.StatefulSet(
            f"{name}-mysql",
            metadata=metadata("kfp-mysql", ns),
            spec={
                "serviceName": "kfp-mysql",
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod_spec(
                        [mysql],
                        volumes=[
                            *({"name": n, "emptyDir": {}} for n in ("run", "tmp")),
                            {"name": "secrets", "secret": {"secretName": "mysql-secret"}},
                        ],
                        node_selector={"sovereign-ml/pool": "system"},
                    ),
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "gp3-encrypted",
                            "resources": {"requests": {"storage": "20Gi"}},
                        },
                    }
                ],
            },
            opts=child(self, protect=args.production, retain_on_delete=args.production),
        )
        k8s.core.v1.Service(
            f"{name}-mysql-svc",
            metadata=metadata("kfp-mysql", ns),
            spec={
                "selector": labels,
                "ports": [{"name": "mysql", "port": 3306}],
                "clusterIP": "None",
            },
            opts=child(self),
        )
        return pulumi.Output.from_input(f"kfp-mysql.{ns}.svc.cluster.local")
