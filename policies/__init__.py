"""What is allowed: rules, CrossGuard pack, checkov checks, shared facts (stdlib only)."""
