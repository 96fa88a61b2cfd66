"""A trained MaskCLIP+ student loads on its own (``load_student``), for src.eval and src.predict,
without the training module, from checkpoints of today's layout and of the layout before the
student's decoder and the self-training snapshot got their names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.test_train import FAST, compose_train, old_layout_checkpoint

# Two steps of two 32-px crops of the zero-shot world, one checkpoint, no validation or test.
TINY_RUN = ["experiment=world_zs", *FAST, "data.dataset_kwargs.num_images=2",
            "data.crop_size=[32,32]", "max_steps=2", "val_every=2",
            "+trainer.limit_val_batches=0", "num_overlays=0", "checkpoint_every=2",
            "test_after_fit=false"]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """``new``: last.ckpt of a tiny run; ``old``: the same checkpoint in the old layout."""
    from src.train import train

    out = tmp_path_factory.mktemp("run")
    train(compose_train([*TINY_RUN, f"paths.output_dir={out}"]))
    new = out / "checkpoints" / "last.ckpt"
    old = out / "old_layout.ckpt"
    ckpt = torch.load(new, map_location="cpu", weights_only=False)
    torch.save(old_layout_checkpoint(ckpt), old)
    return {"new": new, "old": old}


def _student_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The student weights a checkpoint holds, in today's names."""
    from src.models.student import rename_legacy_keys

    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return rename_legacy_keys({k[len("student."):]: v for k, v in state.items()
                               if k.startswith("student.")})


def test_load_student_gives_the_student_its_classes_and_its_normalisation(checkpoints):
    import lightning as L

    from src.models.maskclip_plus_module import load_student
    from src.models.student import SegStudent, TrainedStudent

    ckpt = torch.load(checkpoints["new"], map_location="cpu", weights_only=False)
    hparams, extra = ckpt["hyper_parameters"], ckpt["maskclip_plus"]
    student = load_student(checkpoints["new"])
    assert isinstance(student, TrainedStudent) and isinstance(student, nn.Module)
    assert not isinstance(student, L.LightningModule)
    assert isinstance(student.model, SegStudent) and not student.model.training
    assert list(student.vocabulary.names) == extra["vocabulary"]["names"]
    assert student.num_classes == len(extra["vocabulary"]["names"]) == 12
    # the input statistics it was trained with: data.normalize as the run resolved it
    assert student.image_mean == tuple(hparams["image_mean"]) == CLIP_MEAN
    assert student.image_std == tuple(hparams["image_std"]) == CLIP_STD
    assert student.teacher_spec == extra["teacher"]
    assert student.unseen == hparams["unseen"] and student.test_resize == "direct"
    assert student.config == hparams["student_cfg"]
    assert student.output_stride == student.model.output_stride == 8
    saved = _student_tensors(checkpoints["new"])
    assert list(student.model.state_dict()) == list(saved)
    for key, value in student.model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    images = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        logits = student(images)
        assert torch.equal(logits, student.model(images))
        assert logits.shape == (2, 12, 4, 6)
        assert student.logits_at(images[:1], (20, 30)).shape == (1, 12, 20, 30)


def test_load_student_does_not_build_the_training_module(checkpoints, monkeypatch):
    from src.models import maskclip_plus_module

    def refuse(*args, **kwargs):
        raise AssertionError("load_student built a MaskCLIPPlusLitModule")

    monkeypatch.setattr(maskclip_plus_module.MaskCLIPPlusLitModule, "__init__", refuse)
    assert maskclip_plus_module.load_student(checkpoints["new"]).num_classes == 12


def test_a_checkpoint_in_the_old_layout_loads_the_same_student(checkpoints):
    """student.head.* weights and head/head_init/head_dilations in student_cfg: the student
    and its outputs are the same as from today's checkpoint."""
    from src.models.maskclip_plus_module import load_student

    old_state = torch.load(checkpoints["old"], map_location="cpu", weights_only=True)
    assert any(k.startswith("student.head.") for k in old_state["state_dict"])
    assert old_state["hyper_parameters"]["student_cfg"]["head"] == "deeplabv2"
    new, old = load_student(checkpoints["new"]), load_student(checkpoints["old"])
    assert list(old.model.state_dict()) == list(new.model.state_dict())
    for key, value in new.model.state_dict().items():
        assert torch.equal(old.model.state_dict()[key], value), key
    assert type(old.model.decoder) is type(new.model.decoder)
    assert (old.vocabulary.names, old.image_mean, old.image_std, old.unseen) == \
        (new.vocabulary.names, new.image_mean, new.image_std, new.unseen)
    assert old.config == old_state["hyper_parameters"]["student_cfg"]  # as the file stores it
    images = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(old(images), new(images))


def test_src_eval_of_an_old_layout_checkpoint_gives_the_same_results(checkpoints, tmp_path):
    """`python -m src.eval ckpt_path=...` runs the loaded student (StudentTestModule), with the
    statistics it was trained with whatever data.normalize says."""
    from src.eval import evaluate
    from src.utils.experiments import compose_config

    results = {}
    for layout, path in checkpoints.items():
        cfg = compose_config("eval", [
            "data=world", "+data.dataset_kwargs.num_images=4", f"ckpt_path={path}",
            "data.normalize=imagenet", "logger=csv", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false", f"paths.output_dir={tmp_path / layout}"])
        results[layout] = evaluate(cfg)
    assert results["old"]["summary"] == results["new"]["summary"]
    assert set(results["new"]["summary"]) == {"mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"}


def test_src_predict_labels_the_same_with_an_old_layout_checkpoint(checkpoints, tmp_path):
    """The student path of src.predict / src.label: its own classes and its training
    statistics, the same labels from either layout."""
    from src.labelling import build_labeller
    from src.utils.experiments import compose_config

    image = torch.randn(3, 40, 56)
    out = {}
    for layout, path in checkpoints.items():
        cfg = compose_config("predict", [f"images={tmp_path}", f"ckpt_path={path}",
                                         "trainer.accelerator=cpu"])
        labeller, settings, normalization = build_labeller(cfg)
        assert normalization == (CLIP_MEAN, CLIP_STD)
        assert settings["model"] == "student" and len(settings["classes"]) == 12
        out[layout] = labeller.label(image, keep_probs=True)
    for new, old in zip(out["new"], out["old"]):
        assert torch.equal(new, old)
