"""The offline policy gate: rules, Kubernetes schemas and checkov over the synth record."""
