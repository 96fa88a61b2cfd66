"""Pseudo-label targets on hand-made masks."""

from __future__ import annotations

import torch

from src.models.pseudo_labels import UNLABELED, assign_pseudo_labels, hide_classes


def test_zero_shot_targets_by_hand():
    # classes 0,1 seen; 2,3 unseen; 255 void
    gt = torch.tensor([[[0, 1, 2], [3, 255, 2]]])
    target = hide_classes(gt, [2, 3])
    assert target.tolist() == [[[0, 1, UNLABELED], [UNLABELED, 255, UNLABELED]]]
    # teacher scores over 4 classes: seen class 0 wins everywhere, but only unseen may be chosen
    scores = torch.zeros(1, 4, 2, 3)
    scores[:, 0] = 10.0
    scores[0, 2, 0, 2] = 1.0  # pixel (0,2): unseen 2 beats unseen 3
    scores[0, 3, 1, 0] = 1.0  # pixel (1,0): unseen 3 beats 2
    scores[0, 3, 1, 2] = 2.0
    out = assign_pseudo_labels(target, scores, torch.tensor([2, 3]))
    assert out.tolist() == [[[0, 1, 2], [3, 255, 3]]]  # seen GT kept, void stays void


def test_annotation_free_targets_use_all_classes():
    gt = torch.tensor([[[0, 255], [1, 1]]])
    target = hide_classes(gt, None)
    assert target.tolist() == [[[UNLABELED, 255], [UNLABELED, UNLABELED]]]
    scores = torch.tensor([[[[0.1, 0.9], [0.8, 0.2]], [[0.9, 0.1], [0.2, 0.8]]]])
    out = assign_pseudo_labels(target, scores, torch.arange(2))
    assert out.tolist() == [[[1, 255], [0, 1]]]


def test_scores_are_upsampled_to_the_target():
    target = torch.full((1, 4, 4), UNLABELED)
    scores = torch.zeros(1, 2, 2, 2)
    scores[0, 0, :, 0] = 5.0  # left column of the 2×2 map: class 0
    scores[0, 1, :, 1] = 5.0  # right column: class 1 (bilinear keeps the split in the middle)
    out = assign_pseudo_labels(target, scores, torch.arange(2))
    assert out[0, :, :2].eq(0).all() and out[0, :, 2:].eq(1).all()
