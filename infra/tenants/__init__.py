"""Tenant stacks: the tiers, rendering and validating stack files, the generated templates."""

from infra.tenants.create import (
    RenderedTenant,
    TenantError,
    TenantRequest,
    create_tenant,
    display_path,
    name_problems,
    plan_tenant,
)
from infra.tenants.template_files import (
    stale_template_files,
    substitute,
    template_files,
    write_template_files,
)
from infra.tenants.templates import CHOICES, TEMPLATES, Choice, TenantTemplate

__all__ = [
    "CHOICES",
    "TEMPLATES",
    "Choice",
    "RenderedTenant",
    "TenantError",
    "TenantRequest",
    "TenantTemplate",
    "create_tenant",
    "display_path",
    "name_problems",
    "plan_tenant",
    "stale_template_files",
    "substitute",
    "template_files",
    "write_template_files",
]
