"""The MaskCLIP+ student's pixel cross-entropy.

(The contrastive loss that pre-trains the offline world's CLIP is in
:mod:`src.models.clip_pretraining_loss`.)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


LOSS_AVERAGES = ("valid_pixels", "all_pixels")


def segmentation_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = 255,
                               average: str = "valid_pixels") -> Tensor:
    """Pixel-wise softmax cross-entropy, averaged one of two ways.

    ``valid_pixels`` divides the summed loss by the number of non-ignored pixels (PyTorch's
    ``reduction='mean'`` and mmseg ≥ 0.24's ``avg_non_ignore=True``). ``all_pixels`` divides by
    every pixel of the batch, ignored ones counting as zero: mmseg 0.20.2, which trained the
    official MaskCLIP+, computes ``reduction='none'`` and then takes the plain mean
    (``mmseg/models/losses/cross_entropy_loss.py``). That scales the gradient by the valid
    fraction, roughly 1/3–1/5 on VOC-20 crops, where background and padding are ignored.

    Args:
        logits: B×C×H×W unnormalised scores.
        target: B×H×W class indices, ``ignore_index`` where there is no label.

    Returns:
        A scalar. With no valid pixel at all, ``valid_pixels`` gives 0 (not NaN), as does
        ``all_pixels``.
    """
    if average not in LOSS_AVERAGES:
        raise ValueError(f"loss.average={average!r}: choose one of {list(LOSS_AVERAGES)}")
    if average == "all_pixels":
        return F.cross_entropy(logits, target, ignore_index=ignore_index,
                               reduction="none").mean()
    # The sum over the labelled-pixel count is PyTorch's ``reduction='mean'`` (same gradients)
    # without its NaN when no pixel is labelled, and without a host sync to test for that case.
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp(min=1)
