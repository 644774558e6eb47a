"""Every rejection method equals a plain numpy reference written from its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.stacking.combine import DEFAULT_THRESHOLDS, combine, resolve_method
from agent.stacking.kernels import sort_network
from agent.stacking.stats import gesd_critical_values, sample_stats, t_quantile
from tests.stack_fixtures import planted_stack, reference_stack

METHODS = ["none", "percentile", "sigma", "mad", "avgsigma", "winsorized", "linearfit", "gesd"]
SIZES = [3, 5, 7, 10, 16, 30, 64]


@pytest.mark.parametrize("n", SIZES)
def test_every_method_matches_reference(n: int) -> None:
    cube = planted_stack(n)
    for method in METHODS:
        kl, kh = DEFAULT_THRESHOLDS[method]
        master = combine(list(cube), method=method, rejection_maps=True)
        expected, n_rejected = reference_stack(cube, method, kl, kh)
        np.testing.assert_allclose(master.data, expected, rtol=1e-5, err_msg=f"{method}, n={n}")
        assert master.rejection_low is not None and master.rejection_high is not None
        counted = master.rejection_low.astype(np.int64) + master.rejection_high
        np.testing.assert_array_equal(counted, n_rejected, err_msg=f"{method}, n={n}")
        per_frame = sum(f.rejected_low + f.rejected_high for f in master.frames) * cube[0].size
        assert round(per_frame) == n_rejected.sum(), f"{method}, n={n}"


@pytest.mark.parametrize("method", ["sigma", "winsorized", "linearfit"])
def test_median_combination_matches_reference(method: str) -> None:
    cube = planted_stack(16, seed=3)
    kl, kh = DEFAULT_THRESHOLDS[method]
    master = combine(list(cube), method=method, combine="median")
    expected, _ = reference_stack(cube, method, kl, kh, combine="median")
    np.testing.assert_allclose(master.data, expected, rtol=1e-5)


def test_custom_thresholds_are_used() -> None:
    cube = planted_stack(30, seed=5)
    master = combine(list(cube), method="sigma", low=2.0, high=2.5)
    expected, _ = reference_stack(cube, "sigma", 2.0, 2.5)
    np.testing.assert_allclose(master.data, expected, rtol=1e-5)
    assert master.header["REJ_LOW"] == 2.0 and master.header["REJ_HIGH"] == 2.5


def test_outliers_do_not_reach_the_master() -> None:
    """Cosmic rays, a satellite trail and cold values are clipped: the master stays near truth."""
    cube = planted_stack(30, seed=7)
    clean = combine(list(cube), method="winsorized").data
    naive = cube.mean(axis=0)
    truth = np.median(cube, axis=0)
    assert np.abs(clean - truth).max() < 25.0  # a bright frame (+60 / 30) and noise
    assert np.abs(naive - truth).max() > 200.0


def test_rejected_fraction_is_credited_to_the_bright_frame() -> None:
    cube = planted_stack(16, seed=11)
    cube[4] += 500.0  # one frame far off: rejected high almost everywhere
    master = combine(list(cube), method="sigma")
    high = [f.rejected_high for f in master.frames]
    assert high[4] > 0.9
    assert max(high[:4] + high[5:15]) < 0.2  # frame 15 is planted_stack's own bright frame


def test_auto_picks_method_by_frame_count() -> None:
    assert [resolve_method("auto", n) for n in (3, 6, 7, 10, 11, 25, 26, 200)] == [
        "percentile", "percentile", "avgsigma", "avgsigma", "winsorized", "winsorized", "linearfit", "linearfit",
    ]  # fmt: skip
    master = combine(list(planted_stack(12)), method="auto")
    assert master.header["REJECT"] == "winsorized"


@pytest.mark.parametrize("n", [2, 3, 5, 17, 30, 33, 64, 100])
def test_sorting_network_sorts(n: int) -> None:
    a, b = sort_network(n)
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 50))
    x[:, :5] = np.round(x[:, :5])  # ties
    for i, j in zip(a, b, strict=True):
        lo = np.minimum(x[i], x[j])
        x[j] = np.maximum(x[i], x[j])
        x[i] = lo
    assert np.all(np.diff(x, axis=0) >= 0)


def test_t_quantiles_match_tables() -> None:
    assert t_quantile(0.975, 10.0) == pytest.approx(2.228138851986, rel=1e-9)
    assert t_quantile(0.995, 5.0) == pytest.approx(4.032142983557, rel=1e-9)
    assert t_quantile(0.95, 1.0) == pytest.approx(6.313751514675, rel=1e-9)
    assert t_quantile(0.999, 30.0) == pytest.approx(3.385184866, rel=1e-7)


def test_gesd_critical_values_match_rosner() -> None:
    """n = 20, alpha = 0.05: lambda_1 = 2.708 (Rosner 1983, table 2); lambda_5 from scipy's t.ppf."""
    table = gesd_critical_values(20, 0.3, 0.05)
    assert table[20, 1] == pytest.approx(2.708, abs=1e-3)
    assert table[20, 5] == pytest.approx(2.5856763, rel=1e-6)
    assert math.isinf(table[3, 2])


def test_sample_stats_of_known_noise() -> None:
    rng = np.random.default_rng(0)
    frame = 500.0 + rng.normal(0, 7.0, (200, 300))
    st = sample_stats(frame)
    assert st.location == pytest.approx(500.0, abs=0.2)
    assert st.scale == pytest.approx(7.0, rel=0.03)
    assert st.noise == pytest.approx(7.0, rel=0.03)


def test_band_kernels_are_recompiled_when_the_rejection_code_changes() -> None:
    """numba's cache checks only kernels.py; the digest ties it to rejection.py's source."""
    import hashlib
    from pathlib import Path

    from agent.stacking import kernels, rejection

    digest = hashlib.sha256(Path(rejection.__file__).read_bytes()).hexdigest()[:16]
    assert digest == kernels.REJECTION_DIGEST, (
        f"rejection.py changed: set REJECTION_DIGEST = {digest!r} in agent/stacking/kernels.py "
        "so the cached band kernels are recompiled"
    )
