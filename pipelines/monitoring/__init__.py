"""Monitoring workloads: the drift job and the retraining trigger."""
