"""mIoU / seen / unseen / hIoU against a confusion matrix computed by hand."""

from __future__ import annotations

import math

import torch

from src.metrics.segmentation import SegmentationIoU, iou_per_class


def test_iou_hand_computed_with_ignore_and_absent_class():
    # 4 classes; class 3 never appears in prediction or ground truth.
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 3, 0]])  # last two pixels are ignored
    metric = SegmentationIoU(4, unseen=[2, 3])
    metric.update(pred, target)
    # counted pixels: (0,0) (0,1) (1,1) (1,1) (2,2) (2,0)
    expected_confmat = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(metric.compute(), expected_confmat)
    # IoU_0 = 1/(2+2-1) = 1/3; IoU_1 = 2/(3+2-2) = 2/3; IoU_2 = 1/(1+2-1) = 1/2; IoU_3 = nan
    iou = metric.iou()
    torch.testing.assert_close(iou[:3], torch.tensor([1 / 3, 2 / 3, 1 / 2]))
    assert math.isnan(iou[3])
    summary = metric.summary()
    assert math.isclose(summary["mIoU"], (1 / 3 + 2 / 3 + 1 / 2) / 3, rel_tol=1e-6)
    assert math.isclose(summary["mIoU_seen"], 0.5, rel_tol=1e-6)
    assert math.isclose(summary["mIoU_unseen"], 0.5, rel_tol=1e-6)  # nan class 3 not counted
    assert math.isclose(summary["hIoU"], 0.5, rel_tol=1e-6)


def test_hiou_is_harmonic_mean():
    metric = SegmentationIoU(2, unseen=[1])
    metric.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]))
    s, u = 1 / 2, 2 / 3  # IoU_0 = 1/2, IoU_1 = 2/3
    summary = metric.summary()
    assert math.isclose(summary["hIoU"], 2 * s * u / (s + u), rel_tol=1e-6)


def test_accumulates_over_batches_and_resets():
    metric = SegmentationIoU(3)
    metric.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    metric.update(torch.tensor([[2, 2]]), torch.tensor([[2, 1]]))
    assert torch.equal(metric.compute().sum(), torch.tensor(4))
    metric.reset()
    assert metric.compute().sum() == 0


def test_iou_per_class_nan_only_for_empty_union():
    confmat = torch.tensor([[0, 3], [0, 0]])  # class 0 in GT, never predicted: IoU 0, not nan
    iou = iou_per_class(confmat)
    assert iou[0] == 0 and iou[1] == 0
