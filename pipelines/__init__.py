"""The workloads on the platform: training, features, serving, artifacts, monitoring."""
