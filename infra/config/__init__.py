"""The typed stack config: keys, the frozen ``PlatformConfig``, parsing and its problems."""

# What other areas use; the allowed-value tables (environments, tiers, ...) stay in .keys and the
# section types (NetworkConfig, ClusterConfig) in .model, imported from there where needed.
from infra.config.keys import (
    KEYS,
    KEYS_BY_NAME,
    PROJECT,
    REGION_KEY,
    REQUIRED,
    RESERVED_NAMESPACES,
    TENANT_NAME,
    TENANT_NAME_RULE,
    Key,
    warm_hours_cron,
)
from infra.config.model import NodePoolConfig, PlatformConfig, Tags, Taint
from infra.config.parsing import from_pulumi, load, parse
from infra.config.problems import ConfigError, ConfigProblem, qualified
from infra.config.schema import project_config_schema

__all__ = [
    "KEYS",
    "KEYS_BY_NAME",
    "PROJECT",
    "REGION_KEY",
    "REQUIRED",
    "RESERVED_NAMESPACES",
    "TENANT_NAME",
    "TENANT_NAME_RULE",
    "ConfigError",
    "ConfigProblem",
    "Key",
    "NodePoolConfig",
    "PlatformConfig",
    "Tags",
    "Taint",
    "from_pulumi",
    "load",
    "parse",
    "project_config_schema",
    "qualified",
    "warm_hours_cron",
]
