"""Reusable Pulumi ComponentResources; none of them knows about stacks, config files or the CLI."""

import policies.import_reads  # noqa: F401  (first: sees every module's import; see there)
