"""Tenant stacks from templates: rendering, validation and the pulumi-new template files."""
