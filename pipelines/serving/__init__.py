"""Serving: Triton repositories, the local Triton server, canary analysis, load and benchmarks."""
