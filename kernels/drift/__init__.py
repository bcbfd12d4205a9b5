"""Exact, fast drift statistics (PSI, KS, JS, W1; chi-square for categories) against a reference."""

from kernels.drift.categorical import CategoricalDrift, categorical_drift
from kernels.drift.conventions import (
    DEFAULT_BINS,
    KS_GRID,
    PSI_EPS,
    STATISTICS,
    Backend,
    DriftError,
    check_statistic,
)
from kernels.drift.numeric import DriftResult, drift
from kernels.drift.profile import ReferenceProfile, build_profile
from kernels.drift.statistics import psi_from_fractions

__all__ = [
    "DEFAULT_BINS",
    "KS_GRID",
    "PSI_EPS",
    "STATISTICS",
    "Backend",
    "CategoricalDrift",
    "DriftError",
    "DriftResult",
    "ReferenceProfile",
    "build_profile",
    "categorical_drift",
    "check_statistic",
    "drift",
    "psi_from_fractions",
]
