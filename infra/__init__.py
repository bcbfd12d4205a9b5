"""The Pulumi program and its offline tooling: synth, gate, cost, tenants, demo, the CLI."""
