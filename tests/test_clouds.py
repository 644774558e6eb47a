"""Clouds in our own lights: small synthetic frames with known stars, hot pixels and skies."""

from __future__ import annotations

import numpy as np

from agent.night.clouds import CloudCheck, count_stars

KEY = ("M 31", "L", 60.0)
PEDESTAL = 500.0


def light(
    stars: int, sky: float = 100.0, dim: float = 1.0, hot: int = 0, seed: int = 1, gradient: float = 0.0
) -> np.ndarray:
    """A 256x256 raw light: pedestal + sky + Gaussian stars (FWHM 2.5 px) + read noise."""
    rng = np.random.default_rng(seed)
    h = w = 256
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), PEDESTAL + sky) + gradient * xx / w
    sigma = 2.5 / 2.355
    star_rng = np.random.default_rng(99)  # the same field every time; clouds only dim it
    for _ in range(stars):
        y, x = star_rng.uniform(8, h - 8, size=2)
        flux = star_rng.uniform(600, 6000) * dim
        img += flux / (2 * np.pi * sigma**2) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    img = rng.poisson(np.clip(img - PEDESTAL, 0, None)) + PEDESTAL + rng.normal(0, 4, (h, w))
    for _ in range(hot):
        img[rng.integers(0, h), rng.integers(0, w)] = 4000
    return img.astype(np.float32)


def test_stars_are_counted_and_hot_pixels_are_not() -> None:
    assert count_stars(light(40)) == 40
    assert 36 <= count_stars(light(40, hot=60)) <= 42  # a hot pixel on a star's wing may split it
    assert count_stars(light(0, hot=60)) <= 1
    assert count_stars(light(0, gradient=400)) <= 1  # a sky gradient (Moon, town) is no star field


def test_a_cloud_after_clear_lights_is_named() -> None:
    check = CloudCheck(pedestal=PEDESTAL)
    for seed in (1, 2, 3):
        assert check.judge(light(40, seed=seed), KEY).ok
    reference = check.reference(KEY)
    assert reference is not None and reference[0] >= 36
    verdict = check.judge(light(40, dim=0.04, seed=4), KEY)  # thick cloud: only the brightest shine through
    assert not verdict.ok
    assert verdict.reason == f"cloud: {verdict.stars} stars against {reference[0]:.0f} expected"
    assert check.judge(light(40, dim=0.6, seed=5), KEY).ok  # a little haze is no cloud


def test_a_bright_sky_is_cloud_lit_by_a_town() -> None:
    check = CloudCheck(pedestal=PEDESTAL)
    assert check.judge(light(40, sky=100), KEY).ok
    verdict = check.judge(light(40, sky=450, seed=2), KEY)
    assert not verdict.ok and verdict.reason is not None and verdict.reason.startswith("cloud: sky 450 ADU")


def test_a_night_that_starts_clouded_does_not_become_the_reference() -> None:
    check = CloudCheck(pedestal=PEDESTAL)
    first = check.judge(light(40, dim=0.02), KEY)
    # nothing to judge against yet: kept (a sparse field must not lose every light), said unjudged
    assert first.ok and "safety.cloud_check.min_stars" in (first.reason or "")
    assert check.reference(KEY) is None, "a light with too few stars never becomes the reference"
    assert check.judge(light(40, seed=2), KEY).ok  # the sky clears: this one is the reference
    assert not check.judge(light(40, dim=0.03, seed=3), KEY).ok


def test_each_target_filter_and_exposure_has_its_own_reference() -> None:
    check = CloudCheck(pedestal=PEDESTAL)
    assert check.judge(light(60), KEY).ok
    short = ("M 31", "L", 10.0)
    assert check.judge(light(12, seed=2), short).ok  # fewer stars in a short light: not cloud
    assert check.reference(short) is not None and check.reference(short)[0] < 20  # type: ignore[index]
    assert not check.judge(light(12, seed=3), KEY).ok
