"""The platform's managed relational databases: one hardened RDS instance, engine aside.

Kubeflow's metadata DB (MySQL) and MLflow's backend store (PostgreSQL) differ only in what
:class:`Engine` holds; everything that makes them safe is here once: private subnets and a
VPC-only security group, a TLS-only parameter group, a KMS-encrypted volume and Performance
Insights, an RDS-managed master password in Secrets Manager under the same key, IAM
authentication, enhanced monitoring, and in production Multi-AZ, deletion protection, a final
snapshot and ``protect``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._aws import (
    child,
    managed_policy,
    partition_of,
    private_store_network,
    service_role,
)


@dataclass(frozen=True)
class Engine:
    """What one database's engine asks for."""

    engine: str
    """RDS engine name (``mysql``, ``postgres``)."""
    version: str
    """Pinned engine version."""
    protocol: str
    """Protocol name in the security group's descriptions (``MySQL``)."""
    port: int
    """Its port."""
    family: str
    """Parameter group family (``mysql8.0``, ``postgres16``)."""
    parameters: Mapping[str, str]
    """Parameter group settings; TLS-only is the engine's own switch."""
    parameters_description: str
    """What the parameter group enforces, in a few words."""
    log_exports: Sequence[str]
    """CloudWatch log types the engine exports."""


@dataclass(frozen=True)
class Database:
    """One database of a component: where it lives and who owns it."""

    identifier: str
    """RDS identifier, also the subnet group's name and the final snapshot's prefix."""
    parameter_group: str
    """The parameter group's name."""
    store: str
    """What it is, in security-group and subnet-group descriptions."""
    label: str
    """Its short name in the monitoring role's description."""
    username: str
    """Master user name (its password is RDS-managed)."""
    allocated_storage: int
    """GiB at creation."""
    max_allocated_storage: int
    """Storage autoscaling ceiling in GiB."""
    db_name: str | None = None
    """Initial database to create (None: the engine's default only)."""


def private_database(
    parent: pulumi.Resource,
    name: str,
    *,
    engine: Engine,
    database: Database,
    key_arn: pulumi.Input[str],
    vpc_id: pulumi.Input[str],
    vpc_cidr: str,
    subnet_ids: Sequence[pulumi.Input[str]],
    production: bool,
) -> pulumi.Output[str]:
    """Declare the database as children of ``parent`` (``<name>-db``, ``-db-sg``,
    ``-db-subnets``, ``-db-params``, ``-db-monitoring-role``) and return its address."""
    sg, subnets = private_store_network(
        f"{name}-db",
        store=database.store,
        protocol=engine.protocol,
        subnet_group=aws.rds.SubnetGroup,
        group_name=database.identifier,
        vpc_id=vpc_id,
        vpc_cidr=vpc_cidr,
        subnet_ids=subnet_ids,
        port=engine.port,
        ingress_description=f"{engine.protocol} from the VPC (pods via the VPC CNI)",
        opts=child(parent),
    )
    params = aws.rds.ParameterGroup(
        f"{name}-db-params",
        name=database.parameter_group,
        family=engine.family,
        description=engine.parameters_description,
        parameters=[{"name": k, "value": v} for k, v in engine.parameters.items()],
        opts=child(parent),
    )
    monitoring, _ = service_role(
        f"{name}-db-monitoring-role",
        service="monitoring.rds.amazonaws.com",
        description=f"RDS enhanced monitoring for the {database.label}",
        managed={
            f"{name}-db-monitoring-policy": managed_policy(
                partition_of(parent), "service-role/AmazonRDSEnhancedMonitoringRole"
            )
        },
        opts=child(parent),
    )
    db = aws.rds.Instance(
        f"{name}-db",
        identifier=database.identifier,
        engine=engine.engine,
        engine_version=engine.version,
        instance_class="db.t4g.medium",
        allocated_storage=database.allocated_storage,
        max_allocated_storage=database.max_allocated_storage,
        storage_type="gp3",
        storage_encrypted=True,
        kms_key_id=key_arn,
        db_name=database.db_name,
        username=database.username,
        # The password never exists in config: RDS keeps it in Secrets Manager under our key.
        manage_master_user_password=True,
        master_user_secret_kms_key_id=key_arn,
        iam_database_authentication_enabled=True,
        db_subnet_group_name=subnets.name,
        vpc_security_group_ids=[sg.id],
        parameter_group_name=params.name,
        publicly_accessible=False,
        multi_az=production,
        backup_retention_period=14 if production else 3,
        copy_tags_to_snapshot=True,
        deletion_protection=production,
        skip_final_snapshot=not production,
        final_snapshot_identifier=f"{database.identifier}-final" if production else None,
        auto_minor_version_upgrade=True,
        enabled_cloudwatch_logs_exports=list(engine.log_exports),
        performance_insights_enabled=True,
        performance_insights_kms_key_id=key_arn,
        monitoring_interval=60,
        monitoring_role_arn=monitoring.arn,
        ca_cert_identifier="rds-ca-rsa2048-g1",
        opts=child(parent, protect=production, retain_on_delete=production),
    )
    return db.address
