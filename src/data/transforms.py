"""Image/mask transforms with mmseg semantics, built on albumentations 2.x.

Two pipelines are provided:

* :func:`build_eval_transform`: keep-ratio rescale (mmseg ``Resize(img_scale, keep_ratio=True)``)
  → normalise → tensor, applied to the **image only**; the mask stays at its original resolution
  because the mmseg protocol scores predictions resized back to the original image size.
* :func:`build_train_transform`: random keep-ratio rescale (``ratio_range``) → random crop with
  padding (mask padded with 255) → horizontal flip → photometric distortion → normalise → tensor,
  applied to image and mask alike (mask always with nearest interpolation).

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

__all__ = [
    "IGNORE_INDEX",
    "NORMALIZATION",
    "RescaleToFit",
    "SegTransform",
    "build_eval_transform",
    "build_train_transform",
    "rescale_size",
]

IGNORE_INDEX = 255

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
) -> SegTransform:
    """Training pipeline following the MaskCLIP+ (mmseg) recipe.

    Random keep-ratio rescale of ``scale`` by a factor in ``ratio_range`` → random crop to
    ``crop_size`` (padding bottom/right where the image is smaller, like mmseg's ``Pad``; image with
    the mean colour so that padding normalises to 0 as in mmseg, mask with 255) → horizontal flip
    (p=0.5) → colour jitter (approximation of mmseg ``PhotoMetricDistortion``) → normalise → tensor.
    mmseg's ``cat_max_ratio`` crop retries are not reproduced.

    Args:
        scale: ``(long_max, short_max)`` before the random ratio.
        crop_size: ``(height, width)`` of the output crop.
        mean: Per-channel mean in [0, 1] units.
        std: Per-channel std in [0, 1] units.
        ratio_range: ``(low, high)`` of the random scale multiplier.

    Returns:
        A :class:`SegTransform` giving a float32 3×h×w image and an int64 h×w mask
        (h, w = ``crop_size``), mask values are source labels or 255.
    """
    mean_f, std_f = _floats(mean), _floats(std)
    crop_h, crop_w = _int_pair(crop_size)
    pipeline = A.Compose(
        [
            RescaleToFit(scale=_int_pair(scale), ratio_range=_float_pair(ratio_range)),
            A.RandomCrop(
                height=crop_h,
                width=crop_w,
                pad_if_needed=True,
                pad_position="top_left",
                border_mode=cv2.BORDER_CONSTANT,
                fill=tuple(255.0 * m for m in mean_f),
                fill_mask=IGNORE_INDEX,
            ),
            A.HorizontalFlip(p=0.5),
            # mmseg: brightness ±32/255 (additive), contrast and saturation ×[0.5, 1.5], hue ±18
            # OpenCV units (= ±0.1 of the hue circle); here as one multiplicative jitter.
            A.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.1, p=0.5),
            A.Normalize(mean=mean_f, std=std_f, max_pixel_value=255.0),
            ToTensorV2(),
        ]
    )
    return SegTransform(pipeline, transform_mask=True)


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
