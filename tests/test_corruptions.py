"""The robustness test's corruptions: seeding, severity constants in effect, and the eval loop."""

from __future__ import annotations

import numpy as np
import pytest

from src.data.corruptions import (CORRUPTIONS, GAUSSIAN_NOISE, IMPULSE_NOISE, JPEG_QUALITY,
                                  corrupt)


def _scene(size=64, seed=0):
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size, 3), np.uint8)
    image[: size // 2] = (200, 60, 40)
    image[size // 2:] = (40, 90, 200)
    return np.clip(image + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_seeded_per_image_and_keeps_shape(name):
    image = _scene()
    a = corrupt(image, name, 3, seed=0, index=5)
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.array_equal(a, corrupt(image, name, 3, seed=0, index=5))
    assert not np.array_equal(a, image)
    if name not in ("gaussian_blur", "defocus_blur", "jpeg_compression"):  # deterministic ones
        assert not np.array_equal(a, corrupt(image, name, 3, seed=0, index=6))


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_damage_grows_with_severity(name):
    image = _scene(96)
    damage = [np.abs(corrupt(image, name, s).astype(float) - image).mean() for s in (1, 3, 5)]
    assert damage[0] < damage[2], damage


def test_gaussian_noise_has_the_imagenet_c_spread():
    grey = np.full((256, 256, 3), 128, np.uint8)
    for severity in (1, 3):
        noisy = corrupt(grey, "gaussian_noise", severity).astype(float)
        assert abs(noisy.std() - GAUSSIAN_NOISE[severity - 1] * 255) < 0.05 * 255 * GAUSSIAN_NOISE[severity - 1]


def test_impulse_noise_replaces_the_configured_fraction():
    grey = np.full((256, 256, 3), 128, np.uint8)
    noisy = corrupt(grey, "impulse_noise", 4)
    changed = (noisy != 128).mean()
    assert abs(changed - IMPULSE_NOISE[3]) < 0.01
    assert set(np.unique(noisy[noisy != 128]).tolist()) == {0, 255}


def test_jpeg_uses_the_quality_table():
    from io import BytesIO

    from PIL import Image

    image = _scene(64)
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY[4])
    buffer.seek(0)
    expected = np.asarray(Image.open(buffer).convert("RGB"))
    assert np.array_equal(corrupt(image, "jpeg_compression", 5), expected)


def test_blur_keeps_a_flat_image_flat():
    flat = np.full((48, 48, 3), 77, np.uint8)
    for name in ("gaussian_blur", "defocus_blur"):
        assert np.abs(corrupt(flat, name, 5).astype(int) - 77).max() <= 1


def test_bad_names_and_severities():
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(_scene(), "fog", 1)
    with pytest.raises(ValueError, match="1..5"):
        corrupt(_scene(), "spatter", 6)
