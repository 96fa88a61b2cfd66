"""Losses: the MaskCLIP+ student's pixel cross-entropy, and the contrastive loss that
pre-trains the offline world's CLIP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import Tensor


class MultiPositiveClipLoss(ClipLoss):
    """open_clip's ``ClipLoss`` where identical captions in a batch are all positives.

    A procedural world repeats captions ("a photo of sand."); plain InfoNCE would push apart
    an image and an identical caption that merely sits in another row. Here the target of each
    row is uniform over the rows that share its caption id, in both directions. With all ids
    distinct this is exactly ``ClipLoss``.

    ``forward(image_features, text_features, logit_scale, caption_ids)``: N×D, N×D, scalar and
    N long caption ids (equal ids = identical captions). Single-process only when ids are given.
    """

    def forward(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                caption_ids: Tensor | None = None, output_dict: bool = False):
        if caption_ids is None:
            return super().forward(image_features, text_features, logit_scale,
                                   output_dict=output_dict)
        if self.world_size > 1:
            raise NotImplementedError("multi-positive targets are single-process")
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features,
                                                            logit_scale)
        same = (caption_ids[:, None] == caption_ids[None, :]).float()
        targets = same / same.sum(dim=1, keepdim=True)
        loss = (F.cross_entropy(logits_per_image, targets)
                + F.cross_entropy(logits_per_text, targets)) / 2
        return {"contrastive_loss": loss} if output_dict else loss


def caption_ids(captions: list[str]) -> Tensor:
    """N long tensor: equal ids for identical caption strings."""
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(c, len(index)) for c in captions], dtype=torch.long)


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
