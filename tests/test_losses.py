"""The multi-positive CLIP loss that pre-trains the world CLIP (clip_pretraining_loss.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from src.models.clip_pretraining_loss import MultiPositiveClipLoss, caption_ids


def test_equals_clip_loss_when_captions_are_unique():
    img, txt = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(10.0)
    ours = MultiPositiveClipLoss()(img, txt, scale, caption_ids([f"c{i}" for i in range(6)]))
    torch.testing.assert_close(ours, ClipLoss()(img, txt, scale))


def test_identical_captions_are_not_pushed_apart():
    # rows 0 and 1 share a caption; text 0 == text 1, so image 0 cannot tell them apart.
    txt = F.normalize(torch.randn(3, 8), dim=-1)
    txt[1] = txt[0]
    img = txt.clone()
    scale = torch.tensor(50.0)
    ids = caption_ids(["a ball on sand.", "a ball on sand.", "sky."])
    multi = MultiPositiveClipLoss()(img, txt, scale, ids)
    logits = scale * img @ txt.T
    targets = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    expected = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    torch.testing.assert_close(multi, expected)


def test_caption_ids():
    assert caption_ids(["a", "b", "a", "c"]).tolist() == [0, 1, 0, 2]
