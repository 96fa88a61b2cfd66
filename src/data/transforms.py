"""Image/mask transforms with mmseg semantics, built on albumentations 2.x.

Two pipelines are provided:

* :func:`build_eval_transform`: keep-ratio rescale (mmseg ``Resize(img_scale, keep_ratio=True)``)
  → normalise → tensor, applied to the **image only**; the mask stays at its original resolution
  because the mmseg protocol scores predictions resized back to the original image size.
* :func:`build_train_transform`: random keep-ratio rescale (``ratio_range``) → random crop with
  padding (mask padded with 255) → horizontal flip → photometric distortion → normalise → tensor,
  applied to image and mask alike (mask always with nearest interpolation). Two opt-in switches
  reproduce the official MaskCLIP+ (mmseg 0.20.2) recipe exactly: ``cat_max_ratio``
  (:class:`MMSegRandomCrop`, the crop retry rule) and ``photometric='mmseg'``
  (:class:`PhotoMetricDistortion`, then padding after normalisation).

Both return a :class:`SegTransform`, a callable ``transform(image=..., mask=...) -> dict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.core.transforms_interface import BaseTransformInitSchema
from albumentations.pytorch import ToTensorV2
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from src.constants import IGNORE_INDEX

__all__ = [
    "IGNORE_INDEX",
    "NORMALIZATION",
    "PHOTOMETRIC",
    "MMSegRandomCrop",
    "PhotoMetricDistortion",
    "RescaleToFit",
    "SegTransform",
    "build_eval_transform",
    "build_train_transform",
    "category_counts",
    "check_augment_args",
    "photometric_distortion",
    "rescale_size",
]


#: Values of ``build_train_transform(photometric=...)``: ``jitter`` (albumentations ColorJitter,
#: an approximation), ``mmseg`` (the exact mmseg 0.20.2 PhotoMetricDistortion + Pad) or ``none``
#: (geometry only: for data whose classes are told apart by colour, such as the offline world).
PHOTOMETRIC = ("jitter", "mmseg", "none")

#: Per-channel (mean, std) in [0, 1] units, keyed by name. "imagenet" is the official MaskCLIP
#: code's 123.675/116.28/103.53 and 58.395/57.12/57.375 divided by 255.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "clip": (tuple(OPENAI_DATASET_MEAN), tuple(OPENAI_DATASET_STD)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def rescale_size(height: int, width: int, scale: Sequence[int]) -> tuple[int, int]:
    """Output size of an mmseg/mmcv keep-ratio rescale.

    The factor is the largest one that fits the long side into ``max(scale)`` and the short side
    into ``min(scale)`` (so the order of ``scale`` does not matter, as in mmcv); it can enlarge.

    Args:
        height: Input height H.
        width: Input width W.
        scale: ``(long_max, short_max)``, e.g. ``(2048, 512)`` (short side 512) or ``(520, 520)``
            (long side 520).

    Returns:
        ``(new_height, new_width)``, each ``int(x * factor + 0.5)``.
    """
    long_max, short_max = max(scale), min(scale)
    factor = min(long_max / max(height, width), short_max / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


class RescaleToFit(A.DualTransform):
    """Keep-ratio rescale with mmseg ``Resize(img_scale=scale, keep_ratio=True)`` semantics.

    The image is resized bilinearly, masks with nearest neighbour (labels stay labels). With
    ``ratio_range`` the target scale is first multiplied by a ratio drawn uniformly from the range
    (mmseg ``ratio_range``: ``scale = (int(s0 * r), int(s1 * r))``), as in training.

    Args:
        scale: ``(long_max, short_max)``; see :func:`rescale_size`.
        ratio_range: Optional ``(low, high)`` for the random scale multiplier.
        p: Probability of applying the transform.
    """

    class InitSchema(BaseTransformInitSchema):
        scale: tuple[int, int]
        ratio_range: tuple[float, float] | None

    def __init__(
        self,
        scale: tuple[int, int] = (2048, 512),
        ratio_range: tuple[float, float] | None = None,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.scale = tuple(scale)
        self.ratio_range = None if ratio_range is None else tuple(ratio_range)

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        height, width = params["shape"][:2]
        scale = self.scale
        if self.ratio_range is not None:
            ratio = self.py_random.uniform(*self.ratio_range)
            scale = (int(scale[0] * ratio), int(scale[1] * ratio))
        return {"target_size": rescale_size(height, width, scale)}

    def apply(self, img: np.ndarray, target_size: tuple[int, int], **params: Any) -> np.ndarray:
        return _resize(img, target_size, cv2.INTER_LINEAR)

    def apply_to_mask(
        self, mask: np.ndarray, target_size: tuple[int, int], **params: Any
    ) -> np.ndarray:
        return _resize(mask, target_size, cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale", "ratio_range")


def _resize(array: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """Resizes an H×W[×C] array to ``size`` = (h, w), skipping the no-op case."""
    if array.shape[:2] == tuple(size):
        return array
    # cv2 takes (width, height).
    return cv2.resize(array, (size[1], size[0]), interpolation=interpolation)


def check_augment_args(
    photometric: str, cat_max_ratio: float | None, prefix: str = ""
) -> tuple[str, float | None]:
    """Validates the official-augmentation switches of :func:`build_train_transform`.

    Args:
        photometric: ``'jitter'`` or ``'mmseg'``.
        cat_max_ratio: None or a float in (0, 1].
        prefix: Prepended to the field names in error messages (e.g. ``'data.'``).

    Returns:
        ``(photometric, cat_max_ratio)`` with ``cat_max_ratio`` as a plain float or None.

    Raises:
        ValueError: Naming the offending field.
    """
    if photometric not in PHOTOMETRIC:
        raise ValueError(f"{prefix}photometric must be 'jitter', 'mmseg' or 'none', got "
                         f"{photometric!r}.")
    if cat_max_ratio is not None:
        bad = isinstance(cat_max_ratio, bool) or not isinstance(cat_max_ratio, (int, float))
        if bad or not 0.0 < float(cat_max_ratio) <= 1.0:
            raise ValueError(
                f"{prefix}cat_max_ratio must be in (0, 1] or null, got {cat_max_ratio!r} "
                "(official MaskCLIP+: 0.75)."
            )
        cat_max_ratio = float(cat_max_ratio)
    return photometric, cat_max_ratio


class MMSegRandomCrop(A.DualTransform):
    """Random crop with mmseg 0.20.2 ``RandomCrop`` semantics, including ``cat_max_ratio``.

    Reproduces ``RandomCrop`` of mmseg 0.20.2 ``mmseg/datasets/pipelines/transforms.py``: a box
    of ``(height, width)`` is drawn with its top-left offset uniform in ``[0, max(H - height, 0)]``
    × ``[0, max(W - width, 0)]`` (both ends inclusive) and clipped to the image, so an image smaller
    than the box gives a smaller crop (no padding here; mmseg pads later with ``Pad``).

    With ``cat_max_ratio < 1`` the box is checked up to 10 times: the label map inside the box is
    counted per label value, leaving out ``ignore_index``; the box is kept when it holds more than
    one category and the largest one covers less than ``cat_max_ratio`` of the counted pixels,
    otherwise a new box is drawn. If all 10 checks fail, the 11th draw is used unchecked. As in
    the official pipeline, where ``LoadAnnotations(suppress_labels=...)`` has already turned them
    into -1, the ``suppressed_classes`` count as ONE category for this rule; the returned mask
    keeps the original values. ``cat_max_ratio`` None or 1 (mmseg's default) means no checks.
    Without a ``mask`` target the rule is skipped.

    Randomness comes from ``self.py_random`` (so ``Compose(seed=...)`` / ``set_random_seed``
    reproduce crops); each box costs two draws, offset_h then offset_w.

    Args:
        height: Crop height ch.
        width: Crop width cw.
        cat_max_ratio: Largest share one category may have in the crop; None or 1 disables it.
        ignore_index: Label left out of the counts (255).
        suppressed_classes: Class indices counted together as one category; None = none.
        p: Probability of applying the transform.

    Targets: image H×W[×C] → h×w[×C], mask H×W → h×w, with h = min(H, ch), w = min(W, cw).
    """

    class InitSchema(BaseTransformInitSchema):
        height: int
        width: int
        cat_max_ratio: float | None
        ignore_index: int
        suppressed_classes: tuple[int, ...] | None

    #: Number of checked draws before the last (unchecked) one, as in mmseg.
    max_checks: int = 10

    def __init__(
        self,
        height: int,
        width: int,
        cat_max_ratio: float | None = None,
        ignore_index: int = IGNORE_INDEX,
        suppressed_classes: Sequence[int] | None = None,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if height <= 0 or width <= 0:
            raise ValueError(f"Crop size must be positive, got {(height, width)}.")
        _, cat_max_ratio = check_augment_args("jitter", cat_max_ratio)
        self.height = int(height)
        self.width = int(width)
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = int(ignore_index)
        self.suppressed_classes = (
            None if suppressed_classes is None else tuple(int(c) for c in suppressed_classes)
        )

    def _draw_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        offset_h = self.py_random.randint(0, max(height - self.height, 0))
        offset_w = self.py_random.randint(0, max(width - self.width, 0))
        return (
            offset_h,
            min(offset_h + self.height, height),
            offset_w,
            min(offset_w + self.width, width),
        )

    def passes(self, seg: np.ndarray) -> bool:
        """The ``cat_max_ratio`` rule on a cropped label map (True: keep the box)."""
        counts = category_counts(seg, self.ignore_index, self.suppressed_classes)
        return counts.size > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        height, width = params["shape"][:2]
        box = self._draw_box(height, width)
        mask = data.get("mask")
        if mask is not None and self.cat_max_ratio is not None and self.cat_max_ratio < 1.0:
            for _ in range(self.max_checks):
                y1, y2, x1, x2 = box
                if self.passes(mask[y1:y2, x1:x2]):
                    break
                box = self._draw_box(height, width)
        return {"crop_box": box}

    def apply(
        self, img: np.ndarray, crop_box: tuple[int, int, int, int], **params: Any
    ) -> np.ndarray:
        y1, y2, x1, x2 = crop_box
        return np.ascontiguousarray(img[y1:y2, x1:x2])

    def apply_to_mask(
        self, mask: np.ndarray, crop_box: tuple[int, int, int, int], **params: Any
    ) -> np.ndarray:
        return self.apply(mask, crop_box)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "cat_max_ratio", "ignore_index", "suppressed_classes")


def category_counts(
    seg: np.ndarray, ignore_index: int = IGNORE_INDEX, suppressed: Sequence[int] | None = None
) -> np.ndarray:
    """Pixel counts of the categories present in a label map, as mmseg's crop rule sees them.

    Args:
        seg: h×w integer label map.
        ignore_index: Label left out (255).
        suppressed: Labels merged into one category (mmseg's -1 after ``suppress_labels``).

    Returns:
        1-D int64 array of the non-zero counts (one entry per present category, any order).
    """
    if seg.size and seg.dtype.kind in "ui" and seg.min() >= 0:
        counts = np.bincount(seg.ravel())  # much faster than np.unique on label maps
        labels = np.flatnonzero(counts)
        counts = counts[labels]
    else:
        labels, counts = np.unique(seg, return_counts=True)
    keep = labels != ignore_index
    labels, counts = labels[keep], counts[keep]
    if suppressed:
        merged = np.isin(labels, np.asarray(suppressed))
        if merged.any():
            counts = np.append(counts[~merged], counts[merged].sum())
    return counts.astype(np.int64)


def _convert(img: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """mmseg's ``convert``: float32 ``img * alpha + beta``, clipped to [0, 255], cast to uint8."""
    out = img.astype(np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(out, 0, 255).astype(np.uint8)


#: The random draws of one PhotoMetricDistortion call (None: that step is skipped).
PMD_DRAWS = ("brightness", "contrast_first", "contrast", "saturation", "hue")


def photometric_distortion(
    img: np.ndarray,
    brightness: float | None = None,
    contrast_first: bool = False,
    contrast: float | None = None,
    saturation: float | None = None,
    hue: int | None = None,
) -> np.ndarray:
    """mmseg 0.20.2 ``PhotoMetricDistortion`` with its random draws given explicitly.

    Follows ``PhotoMetricDistortion`` of mmseg 0.20.2 ``mmseg/datasets/pipelines/transforms.py``.
    Each step is a ``convert``: the image as float32 times ``alpha`` plus ``beta``, clipped to
    [0, 255] and cast back to uint8 (truncating, e.g. 10.7 → 10). In order:

    1. brightness (if not None): ``convert(img, beta=brightness)``;
    2. contrast (if ``contrast_first`` and not None): ``convert(img, alpha=contrast)``;
    3. saturation (if not None): to 8-bit OpenCV HSV (hue 0..179), the S channel is
       ``convert``-ed with ``alpha=saturation``, back to colour;
    4. hue (if not None): to HSV, ``H = (H + hue) mod 180`` in integers, back to colour;
    5. contrast (if not ``contrast_first`` and not None).

    mmseg's mode 1 is ``contrast_first=True``, mode 0 ``False``. mmseg works on BGR images with
    ``BGR2HSV``/``HSV2BGR``; this takes RGB with ``RGB2HSV``/``HSV2RGB``, which is the same
    computation with the channels named consistently.

    Args:
        img: H×W×3 uint8 RGB image.
        brightness: Additive delta (mmseg: uniform in [-32, 32]) or None to skip.
        contrast_first: Apply contrast before saturation/hue (mmseg mode 1) or after (mode 0).
        contrast: Multiplier (mmseg: uniform in [0.5, 1.5]) or None to skip.
        saturation: Multiplier of the S channel (mmseg: uniform in [0.5, 1.5]) or None.
        hue: Integer shift in OpenCV hue units (mmseg: in [-18, 17]) or None.

    Returns:
        H×W×3 uint8 RGB image (a new array).

    Raises:
        TypeError: If ``img`` is not uint8.
    """
    if img.dtype != np.uint8:
        raise TypeError(f"photometric_distortion needs a uint8 image, got {img.dtype}.")
    source = img
    if brightness is not None:
        img = _convert(img, beta=brightness)
    if contrast_first and contrast is not None:
        img = _convert(img, alpha=contrast)
    if saturation is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[:, :, 1] = _convert(hsv[:, :, 1], alpha=saturation)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if hue is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(np.int64) + int(hue)) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and contrast is not None:
        img = _convert(img, alpha=contrast)
    return img.copy() if img is source else img


class PhotoMetricDistortion(A.ImageOnlyTransform):
    """mmseg 0.20.2 ``PhotoMetricDistortion`` as an albumentations transform (uint8 RGB only).

    Draws as ``PhotoMetricDistortion`` of mmseg 0.20.2 ``mmseg/datasets/pipelines/transforms.py``
    does, each from ``self.py_random``: brightness with p=0.5 (delta uniform in
    ``±brightness_delta``); the contrast position (before or after saturation/hue, p=0.5 each);
    contrast with p=0.5 (factor uniform in ``contrast_range``); saturation with p=0.5 (factor
    uniform in ``saturation_range``); hue with p=0.5 (integer shift in
    ``[-hue_delta, hue_delta - 1]``, numpy's ``randint`` excluding its high end). The image
    function is :func:`photometric_distortion`.

    Args:
        brightness_delta: Largest brightness delta (32).
        contrast_range: ``(low, high)`` contrast multiplier range ((0.5, 1.5)).
        saturation_range: ``(low, high)`` saturation multiplier range ((0.5, 1.5)).
        hue_delta: Hue shift bound in OpenCV units (18).
        p: Probability of applying the transform (1 in mmseg; each step has its own 0.5).

    Targets: image H×W×3 uint8 → H×W×3 uint8.
    """

    class InitSchema(BaseTransformInitSchema):
        brightness_delta: float
        contrast_range: tuple[float, float]
        saturation_range: tuple[float, float]
        hue_delta: int

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: int = 18,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.brightness_delta = float(brightness_delta)
        self.contrast_range = _float_pair(contrast_range)
        self.saturation_range = _float_pair(saturation_range)
        self.hue_delta = int(hue_delta)
        if self.hue_delta < 1 or self.brightness_delta < 0:
            raise ValueError(
                f"Need hue_delta >= 1 and brightness_delta >= 0, got {hue_delta}, "
                f"{brightness_delta}."
            )

    def get_params(self) -> dict[str, Any]:
        rng = self.py_random
        delta = self.brightness_delta
        brightness = rng.uniform(-delta, delta) if rng.randint(0, 1) else None
        contrast_first = rng.randint(0, 1) == 1  # mmseg mode == 1
        contrast = rng.uniform(*self.contrast_range) if rng.randint(0, 1) else None
        saturation = rng.uniform(*self.saturation_range) if rng.randint(0, 1) else None
        hue = rng.randint(-self.hue_delta, self.hue_delta - 1) if rng.randint(0, 1) else None
        return {
            "brightness": brightness,
            "contrast_first": contrast_first,
            "contrast": contrast,
            "saturation": saturation,
            "hue": hue,
        }

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        draws = {k: params[k] for k in PMD_DRAWS}  # drawn in get_params
        return photometric_distortion(img, **draws)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("brightness_delta", "contrast_range", "saturation_range", "hue_delta")


class SegTransform:
    """An albumentations pipeline plus the rule of whether it also transforms the mask.

    Call it as ``transform(image=image, mask=mask)`` with ``image`` an H×W×3 uint8 array and
    ``mask`` an H×W integer array or ``None``.

    Args:
        pipeline: The albumentations pipeline; it must end with ``ToTensorV2``.
        transform_mask: If True (training), the mask goes through the pipeline (crops, flips);
            if False (evaluation), it is returned untouched at the original resolution.

    Returns (of ``__call__``):
        ``dict(image=float32 3×h×w, mask=int64 h×w or H×W)``; ``mask`` only when one was given.
    """

    def __init__(self, pipeline: A.Compose, transform_mask: bool) -> None:
        self.pipeline = pipeline
        self.transform_mask = transform_mask

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        if mask is not None and self.transform_mask:
            out = self.pipeline(image=image, mask=mask)
            return {"image": out["image"], "mask": torch.as_tensor(out["mask"]).long()}
        out = {"image": self.pipeline(image=image)["image"]}
        if mask is not None:
            out["mask"] = torch.from_numpy(np.ascontiguousarray(mask)).long()
        return out

    def __repr__(self) -> str:
        return f"SegTransform(transform_mask={self.transform_mask}, pipeline={self.pipeline})"


def build_eval_transform(
    scale: Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> SegTransform:
    """Evaluation pipeline: keep-ratio rescale → normalise → tensor, image only.

    Args:
        scale: ``(long_max, short_max)``; VOC/COCO-Stuff ``(2048, 512)``, Context ``(520, 520)``.
        mean: Per-channel mean in [0, 1] units.
        std: Per-channel std in [0, 1] units.

    Returns:
        A :class:`SegTransform` giving a float32 3×h×w image and the untouched H×W mask.
    """
    pipeline = A.Compose(
        [
            RescaleToFit(scale=_int_pair(scale)),
            A.Normalize(mean=_floats(mean), std=_floats(std), max_pixel_value=255.0),
            ToTensorV2(),
        ]
    )
    return SegTransform(pipeline, transform_mask=False)


def build_train_transform(
    scale: Sequence[int],
    crop_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    ratio_range: Sequence[float] = (0.5, 2.0),
    *,
    cat_max_ratio: float | None = None,
    photometric: str = "jitter",
    suppressed_classes: Sequence[int] | None = None,
) -> SegTransform:
    """Training pipeline following the MaskCLIP+ (mmseg) recipe.

    Default (``photometric='jitter'``, ``cat_max_ratio=None``): random keep-ratio rescale of
    ``scale`` by a factor in ``ratio_range`` → random crop to ``crop_size`` (padding bottom/right
    where the image is smaller; image with the mean colour so that padding normalises to 0 as in
    mmseg, mask with 255) → horizontal flip (p=0.5) → colour jitter (approximation of mmseg
    ``PhotoMetricDistortion``) → normalise → tensor.

    ``photometric='mmseg'`` is the official mmseg 0.20.2 pipeline: rescale → crop without padding
    (:class:`MMSegRandomCrop`) → flip → :class:`PhotoMetricDistortion` → normalise → pad
    bottom/right to ``crop_size`` with 0 in the normalised image and 255 in the mask → tensor.
    ``photometric='none'`` is the default pipeline without the colour jitter.

    ``cat_max_ratio`` (official: 0.75) makes the crop follow mmseg's ``RandomCrop`` retry rule
    (:class:`MMSegRandomCrop`, with ``suppressed_classes`` counted as one category). With
    ``photometric='jitter'`` the crop is then padded right away (mean colour / 255), as today.

    Args:
        scale: ``(long_max, short_max)`` before the random ratio.
        crop_size: ``(height, width)`` of the output crop.
        mean: Per-channel mean in [0, 1] units.
        std: Per-channel std in [0, 1] units.
        ratio_range: ``(low, high)`` of the random scale multiplier.
        cat_max_ratio: None (plain crop) or the largest share of one category in (0, 1].
        photometric: ``'jitter'``, ``'mmseg'`` or ``'none'``.
        suppressed_classes: Classes the official ``LoadAnnotations`` would suppress (set to -1);
            only the crop rule sees them, the mask keeps its values.

    Returns:
        A :class:`SegTransform` giving a float32 3×h×w image and an int64 h×w mask
        (h, w = ``crop_size``), mask values are source labels or 255.

    Raises:
        ValueError: If ``photometric`` or ``cat_max_ratio`` is out of range.
    """
    photometric, cat_max_ratio = check_augment_args(photometric, cat_max_ratio)
    mean_f, std_f = _floats(mean), _floats(std)
    crop_h, crop_w = _int_pair(crop_size)
    rescale = RescaleToFit(scale=_int_pair(scale), ratio_range=_float_pair(ratio_range))
    normalize = A.Normalize(mean=mean_f, std=std_f, max_pixel_value=255.0)
    # Used by every pipeline but today's default (which keeps A.RandomCrop, bit for bit).
    crop = MMSegRandomCrop(
        crop_h,
        crop_w,
        cat_max_ratio=cat_max_ratio,
        ignore_index=IGNORE_INDEX,
        suppressed_classes=suppressed_classes,
    )
    if photometric == "mmseg":
        steps: list[A.BasicTransform] = [
            rescale,
            crop,
            A.HorizontalFlip(p=0.5),
            PhotoMetricDistortion(),
            normalize,
            _pad_bottom_right(crop_h, crop_w, fill=0),  # after Normalize: 0 is the mean colour
            ToTensorV2(),
        ]
        return SegTransform(A.Compose(steps), transform_mask=True)

    fill = tuple(255.0 * m for m in mean_f)
    if cat_max_ratio is None:
        crop_steps: list[A.BasicTransform] = [
            A.RandomCrop(
                height=crop_h,
                width=crop_w,
                pad_if_needed=True,
                pad_position="top_left",
                border_mode=cv2.BORDER_CONSTANT,
                fill=fill,
                fill_mask=IGNORE_INDEX,
            )
        ]
    else:
        crop_steps = [
            crop,
            _pad_bottom_right(crop_h, crop_w, fill=fill),
        ]
    pipeline = A.Compose(
        [
            rescale,
            *crop_steps,
            A.HorizontalFlip(p=0.5),
            # mmseg: brightness ±32/255 (additive), contrast and saturation ×[0.5, 1.5], hue ±18
            # OpenCV units (= ±0.1 of the hue circle); here as one multiplicative jitter.
            *([A.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.1, p=0.5)]
              if photometric == "jitter" else []),
            normalize,
            ToTensorV2(),
        ]
    )
    return SegTransform(pipeline, transform_mask=True)


def _pad_bottom_right(height: int, width: int, fill: float | tuple[float, ...]) -> A.PadIfNeeded:
    """mmseg's ``Pad(size=crop_size)``: image with ``fill``, mask with 255, bottom and right."""
    return A.PadIfNeeded(min_height=height, min_width=width, position="top_left",
                         border_mode=cv2.BORDER_CONSTANT, fill=fill, fill_mask=IGNORE_INDEX)


def _floats(values: Sequence[float]) -> tuple[float, ...]:
    # Hydra passes ListConfig; albumentations' pydantic schemas want plain tuples.
    return tuple(float(v) for v in values)


def _int_pair(values: Sequence[int]) -> tuple[int, int]:
    pair = tuple(int(v) for v in values)
    if len(pair) != 2:
        raise ValueError(f"Expected two integers, got {list(values)!r}.")
    return pair  # type: ignore[return-value]


def _float_pair(values: Sequence[float]) -> tuple[float, float]:
    pair = _floats(values)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ValueError(f"Expected a (low, high) pair, got {list(values)!r}.")
    return pair  # type: ignore[return-value]
