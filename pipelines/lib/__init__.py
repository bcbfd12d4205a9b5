"""Reusable logic behind the KFP training pipeline (``pipelines/training.py``).

The KFP components are thin shells: each imports one function from here inside its body (the
lightweight-component rule) and does nothing else, so the same code runs in-process in tests,
under ``kfp.local`` (this repository on ``PYTHONPATH``) and on the cluster (this package embedded
into the compiled component, see ``pipelines/lib/images.py``).

Modules import torch, pandas and pyarrow lazily where they can: every pipeline step is a fresh
Python process and torch alone costs about 3 s to import on the 2-core development machine.
"""
