"""DenseLabelModule: Lightning ``predict`` over a DenseLabeller, for src.predict and src.label.

Lightning's predict loop gives multi-GPU labelling for free: with ``trainer.devices=N`` every rank
labels a disjoint slice of the images (Lightning's unrepeated distributed sampler, so no image is
done twice or missed), and the writer callbacks save each result as soon as it exists.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from src.models.labeller import DenseLabeller
from src.utils.precision import gpu_autocast


class DenseLabelModule(L.LightningModule):
    """Runs a frozen :class:`DenseLabeller` in ``predict``.

    Args:
        labeller: the frozen dense labeller (teacher or student).
        keep_probs: also return C×H0×W0 probabilities (small images only).
    """

    def __init__(self, labeller: DenseLabeller, keep_probs: bool = False) -> None:
        super().__init__()
        self.labeller = labeller
        self.keep_probs = keep_probs

    def predict_step(self, batch: list[dict[str, Any]], batch_idx: int) -> list[dict[str, Any]]:
        """Per item: ``name``, ``path`` and ``labels``/``confidence`` (H0×W0, CPU) or ``error``.

        Images of the same network-input size go through the model together.
        """
        results: dict[int, dict[str, Any]] = {}
        groups: dict[tuple[int, int], list[int]] = {}
        for i, item in enumerate(batch):
            if "error" in item:
                results[i] = dict(item)
            else:
                groups.setdefault(tuple(item["image"].shape[-2:]), []).append(i)
        # A teacher names its autocast dtype; a student (trained in bf16-mixed) uses bf16.
        dtype = getattr(self.labeller.model, "autocast_dtype", "bfloat16")
        for indices in groups.values():
            images = torch.stack([batch[i]["image"] for i in indices]).to(self.device)
            with gpu_autocast(self.device, dtype):
                outputs = self.labeller.label_batch(
                    images, [batch[i]["orig_size"] for i in indices], self.keep_probs)
            for i, (labels, confidence, probs) in zip(indices, outputs):
                results[i] = {"name": batch[i]["name"], "path": batch[i]["path"],
                              "rgb": batch[i]["rgb"], "labels": labels,
                              "confidence": confidence, "probs": probs}
        return [results[i] for i in range(len(batch))]
