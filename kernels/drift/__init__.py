"""Exact, fast drift statistics (PSI, KS, JS, W1; chi-square for categories) against a reference."""

from kernels.drift.categorical import CategoricalDrift, categorical_drift
from kernels.drift.conventions import (
    DEFAULT_BINS,
    JS_MAX,
    KS_GRID,
    PSI_EPS,
    STATISTICS,
    THRESHOLD_RANGES,
    Backend,
    DriftError,
    check_statistic,
    check_threshold,
    threshold_range,
)
from kernels.drift.numeric import DriftResult, drift
from kernels.drift.profile import ReferenceProfile, build_profile
from kernels.drift.statistics import psi_from_fractions

__all__ = [
    "DEFAULT_BINS",
    "JS_MAX",
    "KS_GRID",
    "PSI_EPS",
    "STATISTICS",
    "THRESHOLD_RANGES",
    "Backend",
    "CategoricalDrift",
    "DriftError",
    "DriftResult",
    "ReferenceProfile",
    "build_profile",
    "categorical_drift",
    "check_statistic",
    "check_threshold",
    "drift",
    "psi_from_fractions",
    "threshold_range",
]
