"""What is allowed: rules, CrossGuard pack, checkov checks, shared facts (stdlib only)."""

from policies import import_reads  # noqa: F401  (first: sees every module's import)
