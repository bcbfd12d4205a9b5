"""Numerical kernels for the platform's monitoring jobs (drift statistics)."""
