"""Canary analysis on the real Triton: guards, step machine, lanes, run, simulation, benchmark."""
