"""Online pseudo-labels for MaskCLIP+ (MaskCLIP §4; official ``MaskClipPlusHead.assign_label`` in
chongzhou96/MaskCLIP mmseg/models/decode_heads/maskclip_plus_head.py).

A training target uses three codes: a class index (ground truth the setting may use), 255
(void, ignored by the loss) and ``UNLABELED`` (a pixel whose class the labeller must supply).
- Annotation-free: every non-void pixel is unlabelled, and the labeller picks among all classes.
- Transductive zero-shot: only the unseen classes' pixels are unlabelled, and the labeller picks
  among the unseen classes only. Where those pixels lie is given, as in ZS3Net/STRICT.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from src.constants import IGNORE_INDEX, UNLABELED


def hide_classes(mask: Tensor, classes: Sequence[int] | Tensor | None) -> Tensor:
    """Mark the pixels of ``classes`` as UNLABELED; None hides every non-void pixel.

    Args:
        mask: B×H×W long ground truth (255 = void).

    Returns:
        B×H×W long training target.
    """
    target = mask.clone()
    if classes is None:
        target[mask != IGNORE_INDEX] = UNLABELED
        return target
    classes = torch.as_tensor(list(classes) if not isinstance(classes, Tensor) else classes,
                              device=mask.device, dtype=mask.dtype)
    target[torch.isin(mask, classes)] = UNLABELED
    return target


def assign_pseudo_labels(target: Tensor, scores: Tensor, candidates: Tensor) -> Tensor:
    """Fill UNLABELED pixels with the labeller's argmax over the candidate classes.

    Args:
        target: B×H×W long (class index, 255 void, UNLABELED).
        scores: B×C×h×w labeller scores over all C classes (any monotone score: logits or
            probabilities), bilinearly upsampled to H×W here if needed.
        candidates: K long class indices the labeller may choose (unseen classes in zero-shot,
            all classes annotation-free).

    Returns:
        B×H×W long target without UNLABELED pixels.
    """
    if scores.shape[-2:] != target.shape[-2:]:
        scores = F.interpolate(scores.float(), size=target.shape[-2:], mode="bilinear",
                               align_corners=False)
    candidates = candidates.to(scores.device)
    choice = candidates[scores.index_select(1, candidates).argmax(dim=1)]
    unlabeled = target == UNLABELED
    return torch.where(unlabeled, choice.to(target.dtype), target)
