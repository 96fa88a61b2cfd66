"""src.callbacks.panels: the image | GT | prediction panels of src.eval and src.train."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger, Logger
from PIL import Image
from torch.utils.data import DataLoader

from src.callbacks import instantiate_callbacks
from src.callbacks.panels import ValidationPanels
from src.data.datamodule import list_collate
from src.utils.experiments import compose_config
from src.utils.visualize import colorize, image_at, make_palette

ALPHA = 0.55  # overlay_panel's default blend


class WandbLogger(Logger):
    """Records what it is sent. Named like Lightning's W&B logger, so that ``log_panel`` hands it
    the panel, key and caption as it does W&B (``log_image``)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, np.ndarray, str]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_image(self, key, images, caption=None, **kwargs) -> None:
        assert len(images) == 1 and len(caption) == 1
        self.images.append((key, images[0], caption[0]))

    def log_table(self, *args, **kwargs) -> None:  # report_per_class's W&B table
        pass


def _samples(num_classes: int, n: int, sizes=((40, 56), (32, 48))) -> list[dict]:
    """Normalised images at a working size and masks at their own (original) size."""
    generator = torch.Generator().manual_seed(0)
    samples = []
    for i in range(n):
        height, width = sizes[i % len(sizes)]
        mask = torch.randint(0, num_classes, (height, width), generator=generator)
        mask[:4] = 255  # some void, drawn in the ignore colour
        samples.append({"image": torch.randn(3, 32, 32, generator=generator), "mask": mask,
                        "name": f"dir/img{i}.jpg", "orig_size": (height, width)})
    return samples


def _blend(labels: torch.Tensor | np.ndarray, rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    colours = colorize(labels, palette).astype(np.float32)
    return (ALPHA * colours + (1 - ALPHA) * rgb.astype(np.float32)).astype(np.uint8)


def _columns(panel: np.ndarray, width: int) -> list[np.ndarray]:
    assert panel.shape[1] % width == 0
    return [panel[:, k * width:(k + 1) * width] for k in range(panel.shape[1] // width)]


def _trainer(tmp_path, recorder, panels) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=[recorder, CSVLogger(tmp_path)],
                     callbacks=[panels], default_root_dir=tmp_path, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False)


def test_test_panels_show_the_modules_prediction_of_the_first_images(tiny_vit, tmp_path):
    """src.eval's panels: the first max_images test images across batches, image | GT |
    prediction, where the prediction is the module's labels for that image."""
    from src.models.maskclip_module import MaskCLIPLitModule

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    module = MaskCLIPLitModule(tiny_vit, ["cat", "dog", "bird"], templates="single",
                               image_mean=mean, image_std=std)
    samples = _samples(3, 5)
    loader = DataLoader(samples, batch_size=2, collate_fn=list_collate)
    recorder = WandbLogger()
    trainer = _trainer(tmp_path, recorder, ValidationPanels(max_images=3, stage="test"))
    trainer.test(module, dataloaders=loader)

    assert [key for key, _, _ in recorder.images] == [
        "test/overlay/0_img0", "test/overlay/1_img1", "test/overlay/2_img2"]  # 2 batches
    assert {caption for _, _, caption in recorder.images} == {"image | GT | prediction"}
    palette = make_palette(3)
    for (key, panel, _), sample in zip(recorder.images, samples):
        size = sample["mask"].shape
        rgb, gt, pred = _columns(panel, size[1])
        np.testing.assert_array_equal(rgb, image_at(sample["image"], size, mean, std))
        np.testing.assert_array_equal(gt, _blend(sample["mask"], rgb, palette))
        with torch.no_grad():
            labels = module.predict_probabilities(sample["image"], size).argmax(0)
        np.testing.assert_array_equal(pred, _blend(labels, rgb, palette))
        # The CSV logger's copy: a PNG per panel under <log_dir>/overlays/.
        with Image.open(f"{trainer.loggers[1].log_dir}/overlays/{key.replace('/', '_')}.png") \
                as png:
            np.testing.assert_array_equal(np.asarray(png), panel)

    trainer.test(module, dataloaders=loader)  # every test run starts counting again
    assert [key for key, _, _ in recorder.images[3:]] == [key for key, _, _ in
                                                          recorder.images[:3]]


def _student_module(tmp_path):
    from src.train import build_module

    cfg = compose_config("train", ["experiment=world_zs", "teacher=tiny", "student=tiny",
                                   "logger=csv", f"paths.output_dir={tmp_path}", "max_steps=10"])
    module = build_module(cfg)
    module.hparams.update(image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3])
    return module


def test_validation_panels_show_teacher_and_student_of_the_first_batch(tmp_path):
    """src.train's panels: the first max_images images of the first validation batch only,
    image | GT | teacher | student, keyed by the global step."""
    module = _student_module(tmp_path)
    num_classes = module.vocabulary.num_classes
    samples = _samples(num_classes, 4)
    loader = DataLoader(samples, batch_size=2, collate_fn=list_collate)
    recorder = WandbLogger()
    trainer = _trainer(tmp_path, recorder, ValidationPanels(max_images=3, stage="validate"))
    trainer.validate(module, dataloaders=loader)

    # max_images=3, but the first batch holds 2 images: 2 panels, as before the callback.
    assert [key for key, _, _ in recorder.images] == ["val/panel/0/step0", "val/panel/1/step0"]
    assert {caption for _, _, caption in recorder.images} == {"image | GT | teacher | student"}
    palette = make_palette(num_classes)
    mean, std = module.panel_normalization
    module.eval()
    for (_, panel, _), sample in zip(recorder.images, samples):
        size = sample["mask"].shape
        rgb, gt, teacher, student = _columns(panel, size[1])
        np.testing.assert_array_equal(rgb, image_at(sample["image"], size, mean, std))
        np.testing.assert_array_equal(gt, _blend(sample["mask"], rgb, palette))
        image = sample["image"][None]
        with torch.no_grad():
            scores = F.interpolate(module.teacher_scores(image), size=size, mode="bilinear",
                                   align_corners=False)
            logits = module.student_logits_at(image, size)
        np.testing.assert_array_equal(teacher, _blend(scores[0].argmax(0), rgb, palette))
        np.testing.assert_array_equal(student, _blend(logits[0].argmax(0), rgb, palette))


def test_no_panels_with_num_overlays_0(tiny_vit, tmp_path):
    from src.models.maskclip_module import MaskCLIPLitModule

    module = MaskCLIPLitModule(tiny_vit, ["cat", "dog"], templates="single")
    recorder = WandbLogger()
    trainer = _trainer(tmp_path, recorder, ValidationPanels(max_images=0, stage="test"))
    trainer.test(module, dataloaders=DataLoader(_samples(2, 2), collate_fn=list_collate))
    assert recorder.images == []
    assert not list(tmp_path.rglob("overlays"))


def test_a_module_without_panel_predictions_is_refused(tmp_path):
    class Plain(L.LightningModule):
        def test_step(self, batch, batch_idx):
            pass

    trainer = _trainer(tmp_path, WandbLogger(), ValidationPanels(max_images=1, stage="test"))
    with pytest.raises(TypeError, match="panel_predictions"):
        trainer.test(Plain(), dataloaders=DataLoader(_samples(2, 1), collate_fn=list_collate))
    with pytest.raises(ValueError, match="stage"):
        ValidationPanels(stage="predict")


@pytest.mark.parametrize(("config", "stage", "default"), [("train", "validate", 2),
                                                          ("eval", "test", 4)])
def test_configs_build_the_panels_from_num_overlays(config, stage, default, tmp_path):
    for overrides, expected in (([], default), (["num_overlays=0"], 0)):
        cfg = compose_config(config, [f"paths.output_dir={tmp_path}", *overrides])
        panels = [c for c in instantiate_callbacks(cfg.callbacks)
                  if isinstance(c, ValidationPanels)]
        assert [(p.stage, p.max_images) for p in panels] == [(stage, expected)]
