"""MaskCLIPLitModule: training-free MaskCLIP evaluation and prediction with Lightning.

The plain ``MaskCLIPTeacher`` does the dense labelling; this module owns the evaluation loop:
per-image inference, upsampling to the ground truth's original resolution (masks are never
resized, as in mmseg and the peers), the IoU metric and the per-class table. The image | GT |
prediction panels are logged by ``src.callbacks.panels.ValidationPanels`` (``stage=test``), which
asks :meth:`MaskCLIPLitModule.panel_predictions` for them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from src.metrics.segmentation import SegmentationIoU
from src.models.frozen import FrozenModule, FrozenSlot
from src.models.teacher import MaskCLIPTeacher, renormalize
from src.prompts.vocabulary import ClassVocabulary, load_vocabulary
from src.utils.precision import gpu_autocast
from src.utils.reporting import iou_by_class, report_per_class

log = logging.getLogger(__name__)


class MaskCLIPLitModule(L.LightningModule):
    """Runs a frozen MaskCLIP teacher in ``test`` (labelling runs through ``DenseLabelModule``).

    ``per_class_table`` names the per-class CSV the next test writes (``src.eval`` gives each
    corruption test its own).

    Args:
        teacher: the frozen dense labeller.
        vocabulary: class vocabulary (shipped name, file or list).
        templates: prompt template set name or list.
        unseen: indices of unseen classes for the zero-shot summary, or None.
        image_mean, image_std: the data normalisation: images are converted to the teacher's
            own (``teacher.image_mean``/``image_std``) when they differ, and shown in panels.
        background_threshold: pixels whose top class probability is below it become class 0
            (background; SCLIP's ``prob_thd`` protocol for VOC-21, Context-60 and COCO-Object,
            wangf3014/SCLIP configs/cfg_voc21.py).

    The teacher is a frozen module (``src.models.frozen``), as in ``MaskCLIPPlusLitModule``: out
    of ``parameters()`` and ``state_dict()``, always in eval mode, moved with the module. Its text
    classifier (buffers, built in ``setup``) moves with it when Lightning places the module.
    """

    per_class_table = "per_class_iou"  # the CSV the next test writes (src.eval: per corruption)

    teacher = FrozenSlot()

    def __init__(
        self,
        teacher: MaskCLIPTeacher,
        vocabulary: ClassVocabulary | str | Sequence[str],
        templates: str | Sequence[str] = "imagenet85",
        unseen: Sequence[int] | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        background_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.teacher = FrozenModule(teacher)
        self.vocabulary = load_vocabulary(vocabulary)
        self.templates = templates
        self.unseen = list(unseen) if unseen else None
        self.image_mean = tuple(image_mean or teacher.image_mean)
        self.image_std = tuple(image_std or teacher.image_std)
        if background_threshold is not None and self.vocabulary.names[0] != "background":
            raise ValueError(f"background_threshold={background_threshold} needs a background "
                             f"class 0, but {self.vocabulary.source} starts with "
                             f"{self.vocabulary.names[0]!r}")
        self.background_threshold = background_threshold
        self.test_iou = SegmentationIoU(self.vocabulary.num_classes, self.unseen)
        self.results: dict[str, Any] = {}

    def setup(self, stage: str) -> None:
        if self.teacher.vocabulary != self.vocabulary:
            self.teacher.set_vocabulary(self.vocabulary, self.templates)

    def predict_probabilities(self, image: Tensor, output_size: Sequence[int]) -> Tensor:
        """Class probabilities for one image at the requested output size.

        Args:
            image: 3×h×w normalised (resized) image.
            output_size: (H, W) of the original image / ground truth.

        Returns:
            C×H×W class probabilities.
        """
        images = renormalize(image[None].to(self.device), (self.image_mean, self.image_std),
                             (self.teacher.image_mean, self.teacher.image_std))
        with gpu_autocast(self.device, self.teacher.autocast_dtype):
            probs = self.teacher(images, output_size=tuple(output_size))
        return probs[0].float()

    def labels(self, probs: Tensor) -> Tensor:
        """C×H×W probabilities → H×W labels; below the background threshold → class 0."""
        confidence, pred = probs.max(0)
        if self.background_threshold is not None:
            pred[confidence < self.background_threshold] = 0
        return pred

    # ------------------------------------------------------------------ panels
    @property
    def panel_normalization(self) -> tuple[Sequence[float], Sequence[float]]:
        """(mean, std) of the test images, to show them in panels (src.callbacks.panels)."""
        return self.image_mean, self.image_std

    def panel_predictions(self, image: Tensor, size: Sequence[int]) -> dict[str, Tensor]:
        """The panel column of one test image (src.callbacks.panels): its labels at the ground
        truth's size ``size``, as ``test_step`` scores them."""
        return {"prediction": self.labels(self.predict_probabilities(image, size))}

    def test_step(self, batch: dict[str, list], batch_idx: int) -> None:
        for image, mask in zip(batch["image"], batch["mask"]):
            pred = self.labels(self.predict_probabilities(image, mask.shape[-2:]))
            self.test_iou.update(pred, mask.to(self.device))

    def on_test_epoch_end(self) -> None:
        iou = self.test_iou.iou().cpu()
        summary = {k: 100.0 * v for k, v in self.test_iou.summary().items()}
        for key, value in summary.items():
            self.log(f"test/{key}", value, sync_dist=False)
        self.results = {"summary": summary,
                        "per_class": iou_by_class(self.vocabulary.names, iou)}
        self._write_per_class_table(iou)
        self.test_iou.reset()

    # ------------------------------------------------------------------ reporting
    def _write_per_class_table(self, iou: Tensor) -> None:
        report_per_class(self.trainer, self.loggers, self.vocabulary.names, iou, self.unseen,
                         table=self.per_class_table)
