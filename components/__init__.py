"""Reusable Pulumi ComponentResources; none of them knows about stacks, config files or the CLI."""
