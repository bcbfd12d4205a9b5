"""kernels.drift against scipy: every statistic, ties, unequal sizes, constants, missing values."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial.distance import jensenshannon

from kernels.drift import (
    JS_MAX,
    PSI_EPS,
    DriftError,
    ReferenceProfile,
    build_profile,
    categorical_drift,
    check_threshold,
    drift,
)
from kernels.drift import statistics as ks_search

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RTOL = 1e-9


def scipy_reference(a: np.ndarray, b: np.ndarray, bins: int = 10) -> dict[str, float]:
    """The four statistics the slow way, with the conventions kernels.drift documents."""
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    edges = np.quantile(a.astype(np.float64), np.linspace(0, 1, bins + 1))
    hist_edges = np.concatenate(([-np.inf], edges[1:-1], [np.inf]))
    p = np.histogram(a, hist_edges)[0] / a.size
    q = np.histogram(b, hist_edges)[0] / b.size
    pc, qc = np.clip(p, PSI_EPS, None), np.clip(q, PSI_EPS, None)
    return {
        "psi": float(np.sum((qc - pc) * np.log(qc / pc))),
        "ks": float(stats.ks_2samp(a, b).statistic),
        "js": float(jensenshannon(p, q)),
        "w1": float(stats.wasserstein_distance(a, b)),
    }


def assert_matches(res, ref_x: np.ndarray, cur_x: np.ndarray, bins: int = 10) -> None:
    """Every feature's statistics equal scipy's (KS bit for bit, the rest to RTOL)."""
    for j in range(ref_x.shape[1]):
        want = scipy_reference(ref_x[:, j], cur_x[:, j], bins)
        got = {s: float(getattr(res, s)[j]) for s in want}
        assert got["ks"] == want["ks"], (j, got, want)
        for s in ("psi", "js", "w1"):
            scale = max(abs(want[s]), 1.0 if s != "w1" else float(np.nanmax(np.abs(ref_x))))
            assert math.isclose(got[s], want[s], rel_tol=RTOL, abs_tol=1e-12 * scale), (s, j)


@st.composite
def samples(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Reference and current matrices mixing ties, constants, unequal sizes and missing values."""
    d = draw(st.integers(1, 3))
    n = draw(st.integers(1, 40))
    m = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(["ties", "floats", "constant"]))
    if kind == "ties":
        elements = st.integers(-3, 3).map(float)
    elif kind == "floats":
        elements = st.floats(-1e3, 1e3, width=32 if dtype == np.float32 else 64)
    else:
        elements = st.sampled_from([2.0])
    ref = draw(hnp.arrays(dtype, (n, d), elements=elements))
    cur_elements = st.integers(-4, 4).map(float) if kind == "constant" else elements
    cur = draw(hnp.arrays(dtype, (m, d), elements=cur_elements))
    bins = draw(st.integers(1, 6))
    grid = draw(st.integers(2, 9))
    return ref, cur, bins, grid


def _with_missing(x: np.ndarray, mask: np.ndarray, fill: float) -> np.ndarray:
    x = x.copy()
    x[mask] = fill
    # Keep one finite value per column; all-missing features are tested separately.
    x[0][~np.isfinite(x[0])] = 1.0
    return x


@FAST
@given(samples(), st.sampled_from(["numpy", "torch"]))
def test_statistics_match_scipy(data, backend: str) -> None:
    ref, cur, bins, grid = data
    # A tiny KS grid forces the pruned search through most of its branches.
    profile = build_profile(ref, bins=bins, ks_grid=grid)
    res = drift(profile, cur, backend=backend)
    assert_matches(res, ref, cur, bins)
    assert not res.empty.any()
    np.testing.assert_array_equal(res.nan_fraction_cur, 0.0)


@settings(FAST, max_examples=150)
@given(samples(), st.sampled_from(["numpy", "torch"]), st.integers(1, 3))
def test_ks_refinement_levels_match_scipy(data, backend: str, stride: int) -> None:
    ref, cur, bins, grid = data
    profile = build_profile(ref, bins=bins, ks_grid=grid)
    # Force the KS search to refine its grid on data this small (it does so past 65,536 points).
    with (
        mock.patch.object(ks_search, "_KS_DIRECT", 0),
        mock.patch.object(ks_search, "_KS_REFINE", stride),
    ):
        res = drift(profile, cur, backend=backend)
    assert_matches(res, ref, cur, bins)


@FAST
@given(samples(), st.data())
def test_missing_values_are_dropped_and_counted(data, draw) -> None:
    ref, cur, bins, grid = data
    fill = draw.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    ref = _with_missing(ref, draw.draw(hnp.arrays(bool, ref.shape)), fill)
    cur = _with_missing(cur, draw.draw(hnp.arrays(bool, cur.shape)), np.nan)
    profile = build_profile(ref, bins=bins, ks_grid=grid)
    res = drift(profile, cur)
    assert_matches(res, ref, cur, bins)
    np.testing.assert_allclose(res.nan_fraction_ref, 1 - np.isfinite(ref).mean(axis=0))
    np.testing.assert_allclose(res.nan_fraction_cur, 1 - np.isfinite(cur).mean(axis=0))
    np.testing.assert_allclose(res.nan_rate_drift, res.nan_fraction_cur - res.nan_fraction_ref)
    np.testing.assert_array_equal(res.n_cur, np.isfinite(cur).sum(axis=0))


def test_profile_edges_are_numpy_quantiles() -> None:
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((1001, 3)).astype(np.float32)
    profile = build_profile(ref, bins=7)
    for j in range(3):
        want = np.quantile(ref[:, j].astype(np.float64), np.linspace(0, 1, 8))
        np.testing.assert_array_equal(profile.edges[j], want)
        np.testing.assert_array_equal(profile.values(j), np.sort(ref[:, j]))
    np.testing.assert_allclose(profile.ref_fractions.sum(axis=1), 1.0)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_large_unequal_samples_with_ties(backend: str) -> None:
    # Above 10,000 points scipy's KS rounds differently (asymptotic mode); ties stress it.
    rng = np.random.default_rng(7)
    ref = np.round(rng.standard_normal((12_000, 2)) * 4).astype(np.float32)
    cur = np.round(rng.standard_normal((15_001, 2)) * 4 + 0.3).astype(np.float32)
    ref[:, 1] = rng.standard_normal(12_000)
    cur[:, 1] = rng.standard_normal(15_001) * 1.1
    res = drift(build_profile(ref), cur, backend=backend)
    assert_matches(res, ref, cur)


def test_identical_window_is_zero() -> None:
    rng = np.random.default_rng(11)
    ref = rng.standard_normal((20_000, 2))
    res = drift(build_profile(ref), ref.copy())
    np.testing.assert_array_equal(res.ks, 0.0)
    np.testing.assert_array_equal(res.w1, 0.0)
    np.testing.assert_allclose(res.psi, 0.0, atol=1e-15)
    assert not res.drifted(0.0).any()


def test_torch_cpu_tensor_and_float64_window_against_float32_profile() -> None:
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((500, 2)).astype(np.float32)
    cur = rng.standard_normal((300, 2)) + 0.2
    profile = build_profile(torch.from_numpy(ref))
    for current in (cur, torch.from_numpy(cur)):
        assert_matches(drift(profile, current), ref.astype(np.float64), cur)


def test_memory_layouts_give_the_same_result() -> None:
    rng = np.random.default_rng(17)
    ref = rng.standard_normal((3000, 6)).astype(np.float32)
    wide = rng.standard_normal((2000, 12)).astype(np.float32)
    profile = build_profile(ref)
    want = drift(profile, np.ascontiguousarray(wide[:, ::2]), threads=1)
    for cur in (np.asfortranarray(wide[:, ::2]), wide[:, ::2], wide[::1, ::2].astype(np.float64)):
        got = drift(profile, cur, threads=2)
        for s in ("psi", "ks", "js", "w1"):
            np.testing.assert_array_equal(getattr(got, s), getattr(want, s))


def test_schema_mismatch_names_expected_and_got() -> None:
    ref = np.zeros((10, 3))
    profile = build_profile(ref, ["a", "b", "c"])
    with pytest.raises(DriftError, match=r"expected 3 features.*got 2"):
        drift(profile, np.zeros((10, 2)))
    with pytest.raises(DriftError, match=r"expected features \['a', 'b', 'c'\].*missing \['c'\]"):
        drift(profile, np.zeros((10, 3)), feature_names=["a", "b", "x"])
    with pytest.raises(DriftError, match="order differs"):
        drift(profile, np.zeros((10, 3)), feature_names=["c", "b", "a"])
    with pytest.raises(DriftError, match="2-D"):
        drift(profile, np.zeros(10))
    with pytest.raises(DriftError, match="3 features but 2 feature names"):
        build_profile(ref, ["a", "b"])


def test_empty_window_and_empty_features() -> None:
    ref = np.arange(30.0).reshape(10, 3)
    profile = build_profile(ref, ["a", "b", "c"])
    with pytest.raises(DriftError, match="empty window: current has 0 rows"):
        drift(profile, np.zeros((0, 3)))
    cur = np.ones((5, 3))
    cur[:, 1] = np.nan
    with pytest.raises(DriftError, match=r"empty window for feature.* b"):
        drift(profile, cur)
    res = drift(profile, cur, allow_empty_features=True)
    assert res.empty.tolist() == [False, True, False]
    assert np.isnan(res.psi[1]) and np.isnan(res.ks[1]) and np.isnan(res.w1[1])
    assert res.nan_fraction_cur[1] == 1.0
    assert res.drifted(1e9).tolist() == [False, True, False]
    with pytest.raises(DriftError, match="empty reference"):
        build_profile(np.zeros((0, 2)))
    with pytest.raises(DriftError, match="no finite value: b"):
        build_profile(np.where(np.arange(3) == 1, np.nan, ref), ["a", "b", "c"])


def test_profile_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    ref = rng.standard_normal((400, 3)).astype(np.float32)
    ref[::7, 2] = np.nan
    cur = rng.standard_normal((350, 3)).astype(np.float32)
    profile = build_profile(ref, ["x", "y", "z"], bins=5, ks_grid=64)
    path = tmp_path / "profile.npz"
    profile.save(path)
    loaded = ReferenceProfile.load(path)
    assert loaded.feature_names == ("x", "y", "z")
    assert loaded.bins == 5 and loaded.n_rows == 400 and loaded.dtype == np.float32
    for name in ("sorted_values", "n_valid", "edges", "ref_fractions", "grid", "grid_le"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(profile, name))
    a, b = drift(profile, cur), drift(loaded, cur)
    for s in ("psi", "ks", "js", "w1", "nan_fraction_ref"):
        np.testing.assert_array_equal(getattr(a, s), getattr(b, s))
    unnamed = tmp_path / "unnamed.npz"
    build_profile(ref[:, :1]).save(unnamed)
    assert ReferenceProfile.load(unnamed).feature_names is None


@FAST
@given(
    hnp.arrays(np.int64, st.integers(1, 60), elements=st.integers(0, 5)),
    hnp.arrays(np.int64, st.integers(1, 60), elements=st.integers(0, 7)),
    st.booleans(),
)
def test_categorical_chisquare_matches_scipy(ref_codes, cur_codes, as_counts: bool) -> None:
    reference = dict(zip(*np.unique(ref_codes, return_counts=True), strict=True))
    res = categorical_drift(reference if as_counts else ref_codes, cur_codes)
    seen = sorted(set(ref_codes.tolist()))
    obs = np.array([(cur_codes == c).sum() for c in seen])
    unseen = sorted(set(cur_codes.tolist()) - set(seen))
    assert list(res.categories) == seen + unseen
    assert list(res.unseen) == unseen
    assert res.unseen_fraction == pytest.approx(np.isin(cur_codes, unseen).mean())
    if obs.sum() == 0:
        assert math.isnan(res.chi2) and math.isnan(res.p_value)
    else:
        share = np.array([(ref_codes == c).sum() for c in seen]) / ref_codes.size
        want = stats.chisquare(obs, share * obs.sum())
        assert math.isclose(res.chi2, float(want.statistic), rel_tol=1e-12, abs_tol=1e-12)
        if len(seen) == 1:
            assert math.isnan(res.p_value) and math.isnan(float(want.pvalue))
        else:
            assert math.isclose(res.p_value, float(want.pvalue), rel_tol=1e-9, abs_tol=1e-300)
    p = np.array(res.ref_counts) / ref_codes.size
    q = np.array(res.cur_counts) / cur_codes.size
    pc, qc = np.clip(p, PSI_EPS, None), np.clip(q, PSI_EPS, None)
    assert res.psi == pytest.approx(float(np.sum((qc - pc) * np.log(qc / pc))), rel=1e-12)
    assert res.js == pytest.approx(float(jensenshannon(p, q)), rel=1e-12, abs=1e-15)


def test_categorical_labels_missing_and_errors() -> None:
    ref = np.array(["a", "b", "b", None, "c"], dtype=object)
    cur = np.array(["b", "b", "d", float("nan"), "a"], dtype=object)
    res = categorical_drift(ref, cur)
    assert res.categories == ("a", "b", "c", "d")
    assert res.unseen == ("d",) and res.unseen_fraction == 0.25
    assert res.missing_fraction_cur == 0.2 and res.n_cur == 4 and res.n_ref == 4
    assert res.psi > 1  # a new category weighs in PSI through the epsilon
    with pytest.raises(DriftError, match="empty window"):
        categorical_drift(ref, np.array([None, None], dtype=object))
    with pytest.raises(DriftError, match="empty reference"):
        categorical_drift({}, cur)


def test_categorical_mixed_label_types_still_drift() -> None:
    # ints and strings in one object column cannot be sorted: first-seen order, every label kept.
    ref = np.array([1] * 50 + ["a"] * 50, dtype=object)
    cur = np.array(["a"] * 90 + [1] * 10, dtype=object)
    res = categorical_drift(ref, cur)
    assert res.categories == (1, "a") and res.ref_counts == (50, 50) and res.cur_counts == (10, 90)
    assert res.psi > 0.2 and res.p_value < 1e-6
    same = categorical_drift(ref, ref[::-1].copy())
    assert same.psi == 0.0 and same.js == 0.0


HUGE = 2.0**1023
"""Scale that takes values of magnitude 1..2 to near float64's limit (1.8e308)."""


@settings(FAST, max_examples=40)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 2)),
               elements=st.integers(-972, 972).map(lambda i: i / 512)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.just(1)),
               elements=st.integers(-972, 972).map(lambda i: i / 512)),
    st.sampled_from(["numpy", "torch"]),
)  # fmt: skip
def test_values_near_the_float64_limit_give_exact_statistics(ref, cur, backend: str) -> None:
    # Scaling by a power of two is exact, so every statistic of the data scaled to near +-1.8e308
    # must be the unscaled one (times the scale for W1): no NaN, no overflow.
    cur = np.repeat(cur, ref.shape[1], axis=1)
    small = drift(build_profile(ref, bins=4, ks_grid=3), cur, backend=backend)
    big_profile = build_profile(ref * HUGE, bins=4, ks_grid=3)
    big = drift(big_profile, cur * HUGE, backend=backend)
    assert np.all(np.isfinite(big_profile.edges))
    np.testing.assert_array_equal(big_profile.edges, build_profile(ref, bins=4).edges * HUGE)
    for stat in ("psi", "ks", "js"):
        np.testing.assert_array_equal(getattr(big, stat), getattr(small, stat), err_msg=stat)
    with np.errstate(over="ignore"):
        want_w1 = small.w1 * HUGE  # +inf where W1 itself exceeds the largest float64
    np.testing.assert_array_equal(big.w1, want_w1)


def test_w1_near_the_limit_matches_exact_arithmetic() -> None:
    from fractions import Fraction

    rng = np.random.default_rng(5)
    ref = rng.uniform(-1, 1, (300, 1)) * 1.7e308
    cur = rng.uniform(0, 1, (200, 1)) * 1.7e308
    res = drift(build_profile(ref), cur)
    # W1 = integral of |F_ref - F_cur| over the merged support, in exact rationals.
    a, b = np.sort(ref[:, 0]), np.sort(cur[:, 0])
    xs = np.sort(np.concatenate((a, b)))
    exact = sum(
        abs(Fraction(int(np.searchsorted(a, x0, "right")), a.size)
            - Fraction(int(np.searchsorted(b, x0, "right")), b.size))
        * (Fraction(x1) - Fraction(x0))
        for x0, x1 in itertools.pairwise(xs)
    )  # fmt: skip
    assert math.isclose(float(res.w1[0]), float(exact), rel_tol=1e-12)
    assert np.isfinite([res.psi[0], res.ks[0], res.js[0]]).all()
    # Equal distributions whose split-step correction overflows (inf * 0): W1 is exactly 0.
    same = drift(build_profile(np.array([[-1.7e308], [1.7e308]])), np.array([[-1.7e308]] * 2
                 + [[1.7e308]] * 2))  # fmt: skip
    assert (same.w1[0], same.ks[0], same.psi[0]) == (0.0, 0.0, 0.0)
    apart = drift(build_profile(np.full((5, 1), -1.7e308)), np.full((5, 1), 1.7e308))
    assert apart.w1[0] == math.inf  # 3.4e308: beyond float64, correctly rounded to +inf


@pytest.mark.parametrize(
    ("statistic", "threshold", "allowed"),
    [
        ("psi", math.nan, "a finite number > 0"),
        ("psi", math.inf, "a finite number > 0"),
        ("psi", 0.0, "a finite number > 0"),
        ("w1", -1.0, "a finite number > 0"),
        ("ks", 1.5, "a number in (0, 1]"),
        ("ks", -math.inf, "a number in (0, 1]"),
        ("js", 0.9, "a number in (0, 0.832555]"),
    ],
)
def test_thresholds_outside_the_statistic_range_are_refused(
    statistic: str, threshold: float, allowed: str
) -> None:
    with pytest.raises(DriftError) as info:
        check_threshold(threshold, statistic)
    assert str(info.value) == (
        f"threshold {threshold:g} is out of range for {statistic}: use {allowed}"
    )


def test_thresholds_inside_the_range_pass() -> None:
    for statistic, threshold in (("psi", 1e9), ("ks", 1.0), ("js", JS_MAX), ("w1", 1e-300)):
        check_threshold(threshold, statistic)
    with pytest.raises(DriftError, match="unknown statistic 'mean'"):
        check_threshold(0.2, "mean")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_scipy() -> None:
    rng = np.random.default_rng(13)
    ref = np.round(rng.standard_normal((3000, 4)) * 3).astype(np.float32)
    ref[:, 2] = rng.standard_normal(3000)
    cur = np.round(rng.standard_normal((2500, 4)) * 3 + 0.4).astype(np.float32)
    cur[::5, 3] = np.nan
    profile = build_profile(torch.from_numpy(ref).cuda())
    res = drift(profile, torch.from_numpy(cur).cuda())
    assert_matches(res, ref, cur)
    big_ref = rng.standard_normal((20_000, 2))
    big_cur = rng.standard_normal((12_345, 2)) * 1.2
    res = drift(build_profile(big_ref), torch.from_numpy(big_cur).cuda())
    assert_matches(res, big_ref, big_cur)
