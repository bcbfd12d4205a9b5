"""Where a stack's workloads pull images and charts from, resolved once from the config.

``imageSource: upstream`` keeps the inventory's public references (by tag); ``mirror`` points
every image and chart at the zone's ECR registry (the first ``allowedAccountIds`` account, in the
stack's region) and pins each image by the lock file's digest where it has one. Components take
the result in their Args and never read the config or the lock themselves.
"""

from __future__ import annotations

from functools import cache

from infra.config.model import PlatformConfig
from policies.inventory import (
    UPSTREAM,
    Sources,
    load_lock,
    mirror_sources,
    registry_host,
)


@cache
def _mirror(account_id: str, region: str) -> Sources:
    # Cached: the program asks once per component; the lock is read once per run.
    return mirror_sources(registry_host(account_id, region), load_lock())


def sources_for(cfg: PlatformConfig) -> Sources:
    """The image and chart references of ``cfg``'s stack."""
    if cfg.image_source != "mirror":
        return UPSTREAM
    # Config validation refuses mirror without an allowed account, so [0] exists.
    return _mirror(cfg.allowed_account_ids[0], cfg.region)


def workload_image(cfg: PlatformConfig, override: str, ident: str) -> str:
    """A workload image key's value (``modelPullerImage``...) or, empty, the inventory's."""
    return override or sources_for(cfg).image(ident)
