"""The Pulumi program and its offline tooling: synth, gate, cost, tenants, demo, the CLI."""

import policies.import_reads  # noqa: F401  (first: sees every module's import; see there)
