"""Image corruptions for the robustness test (MaskCLIP §4.4): 8 corruptions × 5 severities.

The severity constants are the Hendrycks & Dietterich (ICLR 2019, ImageNet-C) ones, as the
``imagecorruptions`` package on PyPI carries them. That package cannot be used directly: its last
release (1.1.2) calls scikit-image's removed ``multichannel=`` argument and ``pkg_resources``, and
it pulls in the GUI ``opencv-python`` next to albumentations' headless OpenCV. So each corruption
is re-implemented here on numpy / scipy / OpenCV with the same constants and formulas, and every
image's corruption is seeded by (seed, image index) so that runs are repeatable.

All functions take and return H×W×3 uint8 RGB arrays.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

# ImageNet-C severity constants, severity 1..5.
GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_NOISE = (60, 25, 12, 5, 3)
IMPULSE_NOISE = (0.03, 0.06, 0.09, 0.17, 0.27)
SPECKLE_NOISE = (0.15, 0.2, 0.35, 0.45, 0.6)
GAUSSIAN_BLUR = (1, 2, 3, 4, 6)
DEFOCUS_BLUR = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
# (mean, std, blur sigma, threshold, intensity, mud) of the liquid layer.
SPATTER = ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
           (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
           (0.67, 0.4, 1, 0.65, 1.5, 1))
JPEG_QUALITY = (25, 18, 15, 10, 7)
WATER = np.array([238, 238, 175], np.float32) / 255  # pale turquoise, RGB
MUD = np.array([63, 42, 20], np.float32) / 255       # mud brown, RGB


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8, truncating as the reference (np.uint8 of ×255) does."""
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0


def gaussian_noise(image, severity, rng):
    x = _unit(image)
    return _to_uint8(x + rng.normal(size=x.shape, scale=GAUSSIAN_NOISE[severity - 1]))


def shot_noise(image, severity, rng):
    c = SHOT_NOISE[severity - 1]
    return _to_uint8(rng.poisson(_unit(image) * c) / float(c))


def impulse_noise(image, severity, rng):
    """Salt and pepper on a fraction of the values (per channel), half of each."""
    x = _unit(image)
    hit = rng.random(x.shape) < IMPULSE_NOISE[severity - 1]
    salt = rng.random(x.shape) < 0.5
    x = np.where(hit, salt.astype(np.float64), x)
    return _to_uint8(x)


def speckle_noise(image, severity, rng):
    x = _unit(image)
    return _to_uint8(x + x * rng.normal(size=x.shape, scale=SPECKLE_NOISE[severity - 1]))


def gaussian_blur(image, severity, rng):
    sigma = GAUSSIAN_BLUR[severity - 1]
    # skimage.filters.gaussian's defaults: nearest-edge mode, truncate at 4 sigma.
    return _to_uint8(gaussian_filter(_unit(image), sigma=(sigma, sigma, 0), mode="nearest",
                                     truncate=4.0))


def _disk(radius: int, alias_blur: float) -> np.ndarray:
    """A normalised disc kernel, anti-aliased with a small Gaussian."""
    half, ksize = (8, (3, 3)) if radius <= 8 else (radius, (5, 5))
    grid = np.arange(-half, half + 1)
    xs, ys = np.meshgrid(grid, grid)
    disk = ((xs**2 + ys**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)


def defocus_blur(image, severity, rng):
    radius, alias = DEFOCUS_BLUR[severity - 1]
    kernel = _disk(radius, alias)
    x = _unit(image)
    blurred = np.stack([cv2.filter2D(x[..., ch], -1, kernel) for ch in range(3)], axis=-1)
    return _to_uint8(blurred)


def spatter(image, severity, rng):
    """Water drops (severities 1–3) or mud (4–5) over the image."""
    mean, std, sigma, threshold, intensity, mud = SPATTER[severity - 1]
    x = image.astype(np.float32) / 255.0
    liquid = gaussian_filter(rng.normal(size=x.shape[:2], loc=mean, scale=std), sigma=sigma,
                             mode="nearest", truncate=4.0)
    liquid[liquid < threshold] = 0
    if not mud:
        layer = (liquid * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.blur(cv2.filter2D(dist, cv2.CV_8U, emboss), (3, 3)).astype(np.float32)
        strength = layer.astype(np.float32) * dist
        strength = strength / max(float(strength.max()), 1e-12) * intensity
        return _to_uint8(x + strength[..., None] * WATER)
    mask = gaussian_filter((liquid > threshold).astype(np.float32), sigma=intensity,
                           mode="nearest", truncate=4.0)
    mask[mask < 0.8] = 0
    return _to_uint8(x * (1 - mask[..., None]) + MUD * mask[..., None])


def jpeg_compression(image, severity, rng):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY[severity - 1])
    buffer.seek(0)
    with Image.open(buffer) as im:
        return np.asarray(im.convert("RGB")).copy()


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "spatter": spatter,
    "jpeg_compression": jpeg_compression,
}


def corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0, index: int = 0
            ) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1–5), seeded by (seed, image index).

    Raises:
        ValueError: unknown corruption or severity, naming the choices.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {list(CORRUPTIONS)}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"corruption severity must be 1..5, got {severity}")
    rng = np.random.default_rng([seed, index, severity, list(CORRUPTIONS).index(name)])
    return CORRUPTIONS[name](np.ascontiguousarray(image[..., :3]), severity, rng)
