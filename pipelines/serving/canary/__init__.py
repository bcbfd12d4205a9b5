"""Canary analysis over the real Triton server: statistics, guards, router, run, demo."""
