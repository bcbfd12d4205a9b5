"""The tenant tiers (``smb``, ``enterprise``): one definition, three outputs.

``TEMPLATES`` below is the single source of the tenant tiers. From it:

- ``infra.tenants.create`` renders ``stacks/Pulumi.<tenant>.yaml`` for ``sovml tenant new``,
  validated with :func:`infra.config.parse` before anything is written;
- ``infra.tenants.template_files`` regenerates ``stacks/templates/<t>.yaml`` (the stack file with
  ``${...}`` placeholders, for people who copy files by hand) and
  ``stacks/templates/<t>/Pulumi.yaml`` (the same template for ``pulumi new``), and a test keeps
  the files equal to it.

A tenant stack is ``environment: prod``: tenants are real customers, so every production rule of
``infra/config/parsing.py`` applies (3 AZs, a NAT gateway per AZ, private API endpoint, a year of
logs, a 30-day key deletion window, an on-demand system pool of at least 2 nodes). The tiers
differ only in sizes and in what runs: same encryption, same residency.

The package is pure logic (no Pulumi, no terminal); ``infra/cli/tenant.py`` is the command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.config import PROJECT as P
from policies.zones import ZONES

APPROVED_VERSION = 1
"""The registry version the templates serve: approved in registry/approvals.json (SOV-MOD-001)."""


@dataclass(frozen=True)
class Choice:
    """A value each tenant chooses (the rest of a stack is fixed by its template)."""

    key: str
    """Config key as a stack file writes it (``sovereign-ml:tenant``, ``aws:region``)."""
    placeholder: str
    """Name of the ``${...}`` placeholder in ``stacks/templates/<t>.yaml``."""
    description: str
    """The question ``pulumi new`` asks."""
    array_hint: str = ""
    """For a list key (one item chosen): what the item is, e.g. ``<alert e-mail address>``;
    empty for a scalar key."""


CHOICES: tuple[Choice, ...] = (
    Choice(
        "sovereign-ml:tenant",
        "TENANT",
        "Tenant name: 3-30 characters, lower-case letters, digits and '-', starting with a "
        "letter; also the stack name and the tenant's namespace",
    ),
    Choice(
        "sovereign-ml:residencyZone",
        "ZONE",
        f"Data-residency zone: one of {', '.join(ZONES)}",
    ),
    Choice("aws:region", "REGION", "AWS region, inside the residency zone"),
    Choice("sovereign-ml:owner", "OWNER", "owner tag: the team or person accountable"),
    Choice("sovereign-ml:costCenter", "COST_CENTER", "cost-center tag, for chargeback"),
    Choice(
        "sovereign-ml:monthlyBudgetUsd",
        "BUDGET_USD",
        "Monthly AWS Budget in USD (alerts at 80% actual and 100% forecast)",
    ),
    Choice(
        "sovereign-ml:allowedAccountIds",
        "ACCOUNT_ID",
        "AWS account (12 digits) the stack deploys into; its ECR registry in the stack's region "
        "is the zone mirror every image and chart is pulled from",
        "<12-digit AWS account id>",
    ),
    Choice(
        "sovereign-ml:budgetAlertEmails",
        "ALERT_EMAIL",
        "Addresses notified by the budget alerts",
        "<alert e-mail address>",
    ),
    Choice(
        "sovereign-ml:alertWebhookUrl",
        "ALERT_WEBHOOK",
        "Incident webhook (https) that receives the stack's pages and tickets from Alertmanager; "
        "required, since a prod stack must page someone",
    ),
    Choice(
        "sovereign-ml:gatewayOidcIssuer",
        "OIDC_ISSUER",
        "OIDC issuer (https) whose tokens the inference gateway accepts; required, since a "
        "prod stack's models are reachable only with its tokens",
    ),
    Choice(
        "sovereign-ml:gatewayOidcJwksUri",
        "OIDC_JWKS_URI",
        "The issuer's JWKS URL (https) the gateway verifies token signatures with; required",
    ),
)


@dataclass(frozen=True)
class TenantTemplate:
    """One tenant tier: what it is for and the stack values it fixes."""

    name: str
    """Tier name, as ``--template`` takes it."""
    display_name: str
    """Title of the ``pulumi new`` template."""
    summary: str
    """One paragraph: who it is for and what it gets (stack-file header, template description)."""
    default_budget_usd: int
    """Monthly budget a new tenant of the tier gets unless told otherwise."""
    fixed: Mapping[str, Any]
    """Stack values the tier fixes, keyed as in a stack file; defaults of Pulumi.yaml otherwise."""
    notes: tuple[str, ...] = ()
    """Why some values are what they are (comment lines in the stack file)."""


SMB = TenantTemplate(
    name="smb",
    display_name="sovereign-ml: SMB tenant (CPU only)",
    summary=(
        "Small-business tenant: a whole platform stack of its own, CPU only (no GPU pool), "
        "a small on-demand system pool and a spot worker pool that scales from zero; "
        "same encryption, residency and production rules as enterprise."
    ),
    default_budget_usd=1500,
    fixed={
        f"{P}:environment": "prod",
        f"{P}:tier": "smb",
        # Every image and chart from the zone's ECR registry of the tenant's account (SOV-SUP-001
        # refuses public registries in prod).
        f"{P}:imageSource": "mirror",
        f"{P}:dataClassification": "confidential",
        # The smallest system pool prod allows (2 on-demand nodes); m7i.large still fits
        # CoreDNS, the add-ons and the platform services of one tenant.
        f"{P}:systemPoolInstanceTypes": ["m7i.large"],
        f"{P}:systemPoolMinSize": 2,
        f"{P}:systemPoolDesiredSize": 2,
        f"{P}:systemPoolMaxSize": 3,
        f"{P}:systemPoolDiskGiB": 50,
        # Pipelines are retried jobs, so spot is safe here; several same-size types keep
        # spot capacity available. Nothing runs on them while idle: min 0.
        f"{P}:workersPoolCapacityType": "SPOT",
        f"{P}:workersPoolInstanceTypes": ["m7i.xlarge", "m6i.xlarge", "m5.xlarge"],
        f"{P}:workersPoolMinSize": 0,
        f"{P}:workersPoolDesiredSize": 0,
        f"{P}:workersPoolMaxSize": 4,
        f"{P}:workersPoolDiskGiB": 50,
        f"{P}:gpuPoolEnabled": False,
        # One NAT for the stack: AWS-service traffic rides the VPC endpoints anyway.
        f"{P}:singleNatGateway": True,
        # CPU-tier inference: Triton on the worker pool, the backend chosen by measurement.
        f"{P}:servedModels": ["credit-risk:cpu"],
        # The approved registry version a prod stack must name (gate SOV-MOD-001); a tenant
        # moves it with its own approvals (sovml model approve, then sovml model export).
        f"{P}:servedModelVersions": [f"credit-risk:{APPROVED_VERSION}"],
        # KEDA takes the model to zero replicas when idle, so the spot pool can go back
        # to zero nodes; waking it is a cold start (components/serving.py says how).
        f"{P}:servingScaleToZero": True,
        # The wake path: the floor during working hours (the zone's time zone).
        f"{P}:servingWarmHours": "Mon-Fri 08:00-18:00",
    },
    notes=(
        "prod rules still apply: 3 AZs, a private API endpoint, 365-day logs, 30-day key "
        "deletion window, a system pool of >= 2 on-demand nodes; one shared NAT gateway "
        "is allowed for the smb tier only.",
        "served models are kept up during servingWarmHours (Mon-Fri 08:00-18:00 in the "
        "zone's time zone) and scale to zero after servingIdleMinutes (default 15) "
        "without requests outside them, so the spot pool can empty; requests alone do "
        "not wake an idle model (scale its Rollout to 1, see components/serving.py); set "
        "servingScaleToZero: false to keep one replica warm.",
    ),
)
"""Small business: the smallest production stack, CPU only, spot workers, models idle to zero."""

ENTERPRISE = TenantTemplate(
    name="enterprise",
    display_name="sovereign-ml: enterprise tenant (CPU + GPU)",
    summary=(
        "Enterprise tenant: a dedicated platform stack with an on-demand GPU pool for "
        "training and GPU inference, on-demand CPU workers and a 3-node system pool; "
        "production rules throughout."
    ),
    default_budget_usd=25000,
    fixed={
        f"{P}:environment": "prod",
        f"{P}:tier": "enterprise",
        f"{P}:imageSource": "mirror",
        f"{P}:dataClassification": "restricted",
        f"{P}:systemPoolMinSize": 3,
        f"{P}:systemPoolDesiredSize": 3,
        f"{P}:systemPoolMaxSize": 6,
        f"{P}:workersPoolCapacityType": "ON_DEMAND",
        f"{P}:workersPoolMinSize": 1,
        f"{P}:workersPoolDesiredSize": 1,
        f"{P}:workersPoolMaxSize": 10,
        f"{P}:gpuPoolEnabled": True,
        f"{P}:gpuPoolCapacityType": "ON_DEMAND",
        f"{P}:gpuPoolMinSize": 1,
        f"{P}:gpuPoolDesiredSize": 1,
        f"{P}:gpuPoolMaxSize": 8,
        # servedModels' default (credit-risk:gpu) at an approved registry version (SOV-MOD-001).
        f"{P}:servedModelVersions": [f"credit-risk:{APPROVED_VERSION}"],
    },
)
"""Enterprise: on-demand CPU and GPU pools, a 3-node system pool."""

TEMPLATES: dict[str, TenantTemplate] = {t.name: t for t in (SMB, ENTERPRISE)}
"""Every tier by name, in the order ``sovml tenant new --template`` lists them."""
