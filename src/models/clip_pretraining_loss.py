"""The contrastive loss that pre-trains the offline world's CLIP (scripts/pretrain_world_clip.py).

Not part of MaskCLIP or MaskCLIP+: the student's loss is in :mod:`src.models.losses`.
"""

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
