"""Experiment tracking, the model registry and the tuner of one stack: MLflow and Katib.

Split from :mod:`infra.platform` (which calls :func:`tracking`) to keep both short; it takes what it
needs from the platform as arguments (and, once the platform runs it, ``uses_mirror``). Every tier
gets it; its backend store follows the tier's database choice: RDS PostgreSQL where the pipelines'
metadata lives on RDS (enterprise), SQLite on an encrypted volume of the server's one pod where it
runs in the cluster (SMB, which deliberately runs no RDS instance). Katib (the cluster's tuner)
comes with the enterprise tier only: its controller, DB manager, MySQL and one suggestion pod per
Experiment are a standing cost the SMB tier's CPU quota would not carry; SMB pipelines tune inside
their tune step (Optuna), as the local run does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.image_admission import ADMISSION_LABEL
from components.katib import Katib, KatibArgs
from components.mlflow import Mlflow, MlflowArgs
from infra.config import PlatformConfig
from infra.images.sources import sources_for

if TYPE_CHECKING:
    from infra.foundation import AwsBase, KubernetesCluster

NAMESPACE = "kubeflow"
"""The server runs beside the pipelines that log to it (that namespace's default-deny applies)."""


def tracking(
    cfg: PlatformConfig,
    base: AwsBase,
    eks: KubernetesCluster,
    opts: pulumi.ResourceOptions,
    db_mode: str = "rds",
) -> Mlflow:
    """The MLflow server with its backend store (``db_mode``: ``rds`` or ``in-cluster``, the
    tier's choice) and its models-bucket prefix; with ``rds`` (enterprise) Katib too."""
    storage_key = base.keys.keys["storage"].arn
    models = base.storage.buckets["models"]
    if db_mode == "rds":
        # Called from infra.platform's build, so the module is loaded: no import cycle at run time.
        from infra.platform import uses_mirror

        Katib(
            "katib",
            KatibArgs(
                vpc_cidr=cfg.network.cidr,
                namespace=NAMESPACE,
                trial_namespaces=[NAMESPACE, *cfg.tenants],
                namespace_labels=dict([ADMISSION_LABEL]) if uses_mirror(cfg) else {},
                sources=sources_for(cfg),
            ),
            opts=opts,
        )
    return Mlflow(
        "mlflow",
        MlflowArgs(
            namespace=NAMESPACE,
            name_prefix=cfg.name_prefix,
            models_bucket=models.bucket,
            models_bucket_arn=models.arn,
            storage_key_arn=storage_key,
            db_key_arn=storage_key,
            cluster_access=eks.cluster.access,
            vpc_id=base.network.vpc_id,
            vpc_cidr=cfg.network.cidr,
            subnet_ids=base.network.private_subnet_ids,
            client_namespaces=list(cfg.tenants),
            production=cfg.production,
            sources=sources_for(cfg),
            db_mode=db_mode,
        ),
        opts=opts,
    )
