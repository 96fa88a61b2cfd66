"""Image | ground truth | prediction panels of the first evaluation images, sent to the loggers.

:class:`ValidationPanels` is the only code that logs panels. The LitModules draw nothing; they
answer what they predict for one image through this small protocol, which
``MaskCLIPLitModule`` (src.eval's teacher) and ``MaskCLIPPlusLitModule`` (src.train's student)
implement:

- ``vocabulary``: the classes; its ``num_classes`` sizes the palette (:func:`make_palette`).
- ``panel_normalization``: ``(mean, std)`` the batch images are normalised with, to show them.
- ``panel_predictions(image, size)``: ``{name: H×W labels}`` for one normalised 3×h×w image of
  the batch, at the ground truth's size ``(H, W)``. Each entry is a panel column, in order, and
  the names make the caption (``image | GT | teacher | student``).

Which images and keys depend on the stage (``stage=``):

- ``validate``: the first ``max_images`` images of the first batch of every validation run, as
  ``val/panel/{index}/step{step}``.
- ``test``: the first ``max_images`` images of every test run, across batches, as
  ``test/overlay/{index}_{stem}`` (stem of the image's name).

Only rank 0 draws and logs. The drawing helpers are the pure functions of
:mod:`src.utils.visualize`; :func:`log_panel` sends a panel to W&B, TensorBoard or, for a
logger with a ``log_dir`` (CSV), a PNG under ``<log_dir>/overlays/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from src.utils.visualize import image_at, make_palette, overlay_panel

#: Logger keys per stage; ``{index}`` counts the panels, ``{step}`` is the global step and
#: ``{stem}`` the image name's stem.
KEYS = {"validate": "val/panel/{index}/step{step}", "test": "test/overlay/{index}_{stem}"}


def log_panel(loggers: Sequence, key: str, panel: np.ndarray, step: int, caption: str) -> None:
    """Send an H×W×3 panel to every logger: W&B image, TensorBoard image, or a PNG file."""
    for logger in loggers:
        kind = type(logger).__name__
        if kind == "WandbLogger":
            logger.log_image(key=key, images=[panel], caption=[caption])
        elif kind == "TensorBoardLogger":
            logger.experiment.add_image(key, panel, step, dataformats="HWC")
        elif getattr(logger, "log_dir", None):
            from PIL import Image

            from src.utils.io import save_png_atomic

            out = Path(logger.log_dir) / "overlays" / f"{key.replace('/', '_')}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            save_png_atomic(Image.fromarray(panel), out)  # never half a PNG


class ValidationPanels(Callback):
    """Logs image | ground truth | prediction(s) panels of the first validation or test images.

    Args:
        max_images: how many images get a panel per run (0: none; conf: ``num_overlays``).
        stage: ``validate`` (src.train) or ``test`` (src.eval); see the module docstring.
        key: the logger key template, by default the stage's (:data:`KEYS`).
    """

    def __init__(self, max_images: int = 2, stage: str = "validate", key: str | None = None
                 ) -> None:
        if stage not in KEYS:
            raise ValueError(f"stage={stage!r}: choose one of {list(KEYS)}")
        self.max_images = int(max_images or 0)
        self.stage = stage
        self.key = key or KEYS[stage]
        self._logged = 0  # test: panels counted so far in this run

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.max_images and not callable(getattr(pl_module, "panel_predictions", None)):
            raise TypeError(f"ValidationPanels needs a LitModule with panel_predictions(image, "
                            f"size) (see src.callbacks.panels); {type(pl_module).__name__} has "
                            "none. Set num_overlays=0 or drop the callback.")

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                outputs: Any, batch: Mapping[str, Any], batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self.stage != "validate" or batch_idx != 0 or not self.max_images \
                or not trainer.is_global_zero:
            return
        for index, (image, mask) in enumerate(zip(batch["image"][:self.max_images],
                                                  batch["mask"][:self.max_images])):
            self.log_image(trainer, pl_module, image, mask, index)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._logged = 0

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                          outputs: Any, batch: Mapping[str, Any], batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        if self.stage != "test":
            return
        for image, mask, name in zip(batch["image"], batch["mask"], batch["name"]):
            if self._logged >= self.max_images:
                return
            if trainer.is_global_zero:
                self.log_image(trainer, pl_module, image, mask, self._logged,
                               stem=Path(str(name)).stem)
            self._logged += 1

    @torch.no_grad()
    def log_image(self, trainer: L.Trainer, pl_module: L.LightningModule, image: torch.Tensor,
                  mask: torch.Tensor, index: int, stem: str = "") -> None:
        """Draw and log the panel of one normalised 3×h×w image and its H×W ground truth."""
        size = mask.shape[-2:]
        predictions = pl_module.panel_predictions(image, size)
        mean, std = pl_module.panel_normalization
        panel = overlay_panel(image_at(image, size, mean, std), mask.cpu().numpy(),
                              [labels.cpu().numpy() for labels in predictions.values()],
                              make_palette(pl_module.vocabulary.num_classes))
        step = trainer.global_step
        key = self.key.format(index=index, step=step, stem=stem)
        log_panel(pl_module.loggers, key, panel, step, " | ".join(["image", "GT", *predictions]))
