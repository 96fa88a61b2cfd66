"""Segmentation metrics: mIoU, per-class IoU, and the zero-shot seen/unseen/hIoU summary.

The confusion matrix is torchmetrics' ``MulticlassConfusionMatrix`` (summed over ranks in DDP);
IoUs are derived from it here. A class absent from both prediction and ground truth has an
undefined IoU and is NaN, not 0, and every mean is a NaN-mean, so seen/unseen/hIoU are not
dragged down by classes an evaluation subset never contains (mmseg does the same).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from src.constants import IGNORE_INDEX


def iou_per_class(confmat: Tensor) -> Tensor:
    """Per-class IoU from a C×C confusion matrix (rows = ground truth, columns = prediction).

    Returns:
        C float tensor; NaN where the class is absent from both prediction and ground truth.
    """
    confmat = confmat.double()
    true_pos = confmat.diag()
    union = confmat.sum(0) + confmat.sum(1) - true_pos
    iou = true_pos / union
    return torch.where(union > 0, iou, torch.full_like(iou, float("nan"))).float()


def summarize_iou(iou: Tensor, unseen: Sequence[int] | None = None) -> dict[str, float]:
    """mIoU, and with a zero-shot split also mIoU over seen, over unseen, and their hIoU.

    hIoU = 2·S·U / (S + U) (the harmonic mean reported by ZS3Net, SPNet and MaskCLIP+).
    """
    out = {"mIoU": float(torch.nanmean(iou))}
    if unseen:
        unseen_mask = torch.zeros_like(iou, dtype=torch.bool)
        unseen_mask[list(unseen)] = True
        seen_iou = float(torch.nanmean(iou[~unseen_mask]))
        unseen_iou = float(torch.nanmean(iou[unseen_mask]))
        denom = seen_iou + unseen_iou
        out["mIoU_seen"] = seen_iou
        out["mIoU_unseen"] = unseen_iou
        out["hIoU"] = 2 * seen_iou * unseen_iou / denom if denom > 0 else float("nan")
    return out


class SegmentationIoU(MulticlassConfusionMatrix):
    """A confusion-matrix metric that ignores 255 and reports IoUs.

    Args:
        num_classes: C.
        unseen: indices of unseen classes for the zero-shot summary (optional).

    ``update(preds, target)`` takes B×H×W (or H×W) long tensors of class indices, with
    ``target == 255`` ignored.
    """

    def __init__(self, num_classes: int, unseen: Sequence[int] | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        # validate_args=False: the datasets already validate mask values, and the check
        # (a torch.unique over every pixel) dominates the update cost.
        super().__init__(num_classes=num_classes, ignore_index=ignore_index, validate_args=False)
        self.unseen = list(unseen) if unseen else None

    def iou(self) -> Tensor:
        """C per-class IoUs (NaN for classes absent from prediction and ground truth)."""
        return iou_per_class(self.compute())

    def summary(self) -> dict[str, float]:
        """mIoU (+ mIoU_seen, mIoU_unseen, hIoU when a split is set) as fractions."""
        return summarize_iou(self.iou(), self.unseen)
