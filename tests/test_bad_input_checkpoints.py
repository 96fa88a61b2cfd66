"""Bad checkpoints and bad runs fail with one clear message, as a user meets them.

CLIP files for ``teacher.pretrained`` (another architecture, truncated or empty, not a CLIP),
student checkpoints for ``src.train ckpt_path=`` (another student, truncated, not a Lightning
checkpoint) and for ``load_student`` (src.eval / src.predict), ``ckpt_path=auto`` passing over a
truncated checkpoint, a diverging run (non-finite loss or teacher scores) and an unwritable
``paths.output_dir``. Everything runs on tiny models the tests build and save themselves.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_train import FAST, compose_train

# Two steps of two 32-px crops, no validation: what checkpoints and divergence need.
TINY_RUN = ["experiment=world_annofree", *FAST, "data.dataset_kwargs.num_images=2",
            "data.crop_size=[32,32]", "max_steps=2", "val_every=2", "+trainer.limit_val_batches=0",
            "num_overlays=0", "checkpoint_every=1", "test_after_fit=false",
            "trainer.log_every_n_steps=1"]


def _truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _student_weights_finite(path: Path) -> bool:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for k, v in state.items()
               if k.startswith("student.") and v.is_floating_point())


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> Path:
    """tiny-vit and tiny-rn CLIPs saved as .pt and .safetensors, as a user would save them."""
    import safetensors.torch

    from src.models.teacher import MaskCLIPTeacher

    folder = tmp_path_factory.mktemp("clips")
    for arch in ("tiny-vit", "tiny-rn"):
        state = MaskCLIPTeacher(arch, None, cache_dir=None).clip.state_dict()
        torch.save(state, folder / f"{arch}.pt")
        safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()},
                                    folder / f"{arch}.safetensors")
    return folder


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished two-step run: checkpoints/step000001.ckpt, step000002.ckpt, last.ckpt."""
    from src.train import train

    out = tmp_path_factory.mktemp("run")
    train(compose_train([*TINY_RUN, f"paths.output_dir={out}"]))
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step000001.ckpt", "step000002.ckpt"], names
    return out


def _copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run / "checkpoints", copy / "checkpoints")
    return copy


# ------------------------------------------------------------------ 1. CLIP checkpoints
def test_clip_of_another_architecture_names_the_model_name_it_fits(clip_files):
    from src.models.clip_loading import create_clip
    from src.models.teacher import MaskCLIPTeacher

    rn = clip_files / "tiny-rn.pt"
    with pytest.raises(ValueError) as err:
        MaskCLIPTeacher("tiny-vit", str(rn), cache_dir=None)
    message = str(err.value)
    assert f"teacher.pretrained={rn} (" in message and "MB)" in message
    assert "does not fit teacher.model_name=tiny-vit" in message
    assert "CLIP state dict for a ModifiedResNet (RN) of width 8, blocks [1, 1, 1, 1]" in message
    assert "Pass teacher.model_name=tiny-rn for this file" in message
    assert len(message) < 1500  # a sentence, not a missing-keys dump

    vit = clip_files / "tiny-vit.safetensors"
    with pytest.raises(ValueError, match=r"tiny-vit\.safetensors .*a ViT of width 48, 3 layers, "
                                         r"patch 8.*teacher\.model_name=tiny-vit"):
        create_clip("tiny-rn", str(vit))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_truncated_or_empty_clip_file_says_so(clip_files, tmp_path, suffix, damage):
    from src.models.teacher import MaskCLIPTeacher

    path = tmp_path / f"tiny-vit{suffix}"
    shutil.copy(clip_files / f"tiny-vit{suffix}", path)
    if damage == "empty":
        path.write_bytes(b"")
    else:
        _truncate(path)
    with pytest.raises(ValueError) as err:
        MaskCLIPTeacher("tiny-vit", str(path), cache_dir=None)
    message = str(err.value)
    assert message.startswith(f"teacher.pretrained={path} (")
    assert ("the file is empty" if damage == "empty" else "truncated") in message
    assert "Download or copy the file again" in message


def test_a_student_checkpoint_or_a_resnet_is_not_a_clip(trained_run, tmp_path):
    import timm

    from src.models.clip_loading import create_clip
    from src.train import train

    student = trained_run / "checkpoints" / "last.ckpt"
    # As a user hits it: src.train with the student checkpoint given to the teacher.
    cfg = compose_train([*TINY_RUN, f"paths.output_dir={tmp_path / 'out'}",
                         f"teacher.pretrained={student}"])
    with pytest.raises(ValueError) as err:
        train(cfg)
    message = str(err.value)
    assert message.startswith(f"teacher.pretrained={student} (")
    assert ("is not a CLIP checkpoint: it is a MaskCLIP+ student checkpoint of 12 classes with "
            "backbone resnet10t") in message
    assert "src.eval ckpt_path=" in message

    backbone = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t").state_dict(), backbone)
    with pytest.raises(ValueError, match=r"resnet10t\.pth .*is not a CLIP checkpoint: it is a "
                                         r"ResNet image backbone state dict"):
        create_clip("tiny-vit", str(backbone))


# ------------------------------------------------------------------ 2. student checkpoints
@pytest.mark.parametrize("override,builds", [
    ("student.head=deeplabv3plus", "12 classes with backbone resnet10t (deeplabv3plus head)"),
    ("data.vocabulary=voc20 zero_shot_split=null",
     "20 classes with backbone resnet10t (deeplabv2 head)"),
], ids=["another_head", "another_class_count"])
def test_resume_from_another_students_checkpoint_is_refused(trained_run, tmp_path, override,
                                                            builds):
    from src.train import train

    ckpt = trained_run / "checkpoints" / "last.ckpt"
    cfg = compose_train([*TINY_RUN, *override.split(), f"paths.output_dir={tmp_path}",
                         f"ckpt_path={ckpt}"])
    with pytest.raises(ValueError) as err:
        train(cfg)
    message = str(err.value)
    assert message.startswith(f"ckpt_path={ckpt} is a MaskCLIP+ student checkpoint of 12 classes "
                              "with backbone resnet10t (deeplabv2 head")
    assert f"but this run builds a student of {builds}" in message
    assert "ckpt_path=null to start fresh" in message
    assert not (tmp_path / "checkpoints").exists()  # refused before fit


@pytest.mark.parametrize("damage", ["truncated", "empty", "a_clip"])
def test_ckpt_path_last_truncated_empty_or_foreign_is_refused(trained_run, clip_files, tmp_path,
                                                              damage):
    from src.train import train

    run = _copy_run(trained_run, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    if damage == "truncated":
        _truncate(last)
    elif damage == "empty":
        last.write_bytes(b"")
    else:
        shutil.copy(clip_files / "tiny-vit.pt", last)
    cfg = compose_train([*TINY_RUN, f"paths.output_dir={run}", "ckpt_path=last"])
    with pytest.raises(ValueError) as err:
        train(cfg)
    message = str(err.value)
    assert message.startswith(f"ckpt_path={last} (")
    expected = {"truncated": "truncated", "empty": "the file is empty",
                "a_clip": "is not a MaskCLIP+ student checkpoint (src.train): it is an "
                          "open_clip/OpenAI CLIP state dict for a ViT of width 48"}[damage]
    assert expected in message
    assert "ckpt_path=auto" in message and "ckpt_path=null" in message


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_load_student_names_a_truncated_or_empty_file(trained_run, tmp_path, damage):
    from src.models.maskclip_plus_module import load_student

    path = tmp_path / "last.ckpt"
    shutil.copy(trained_run / "checkpoints" / "last.ckpt", path)
    if damage == "empty":
        path.write_bytes(b"")
    else:
        _truncate(path, 0.9)
    with pytest.raises(ValueError, match=rf"ckpt_path={path} \(.*\) cannot be read: .*"
                                         rf"{'empty' if damage == 'empty' else 'truncated'}"):
        load_student(str(path))


# ------------------------------------------------------------------ 3. ckpt_path=auto
def test_ckpt_path_auto_resumes_from_the_newest_complete_checkpoint(trained_run, tmp_path,
                                                                    caplog):
    """A run killed while writing step 2 leaves last.ckpt and step000002.ckpt cut short: auto
    passes over both, says so, and resumes from step000001.ckpt."""
    from src.train import resolve_ckpt_path, train

    run = _copy_run(trained_run, tmp_path)
    folder = run / "checkpoints"
    _truncate(folder / "last.ckpt")
    _truncate(folder / "step000002.ckpt", 0.95)
    caplog.set_level(logging.INFO, logger="src.train")
    assert resolve_ckpt_path("auto", run) == str(folder / "step000001.ckpt")
    log = caplog.text
    assert f"skipping {folder / 'last.ckpt'}" in log and "truncated" in log
    assert f"skipping {folder / 'step000002.ckpt'}" in log
    assert f"resuming from {folder / 'step000001.ckpt'} (global step 1;" in log

    caplog.clear()
    train(compose_train([*TINY_RUN, f"paths.output_dir={run}", "ckpt_path=auto"]))
    assert f"resuming from {folder / 'step000001.ckpt'}" in caplog.text
    # The cut-short files were set aside, so Lightning saved under the usual names again
    # (beside them it would have written last-v1.ckpt and left last.ckpt broken).
    assert sorted(p.name for p in folder.iterdir()) == [
        "last.ckpt", "last.ckpt.incomplete", "step000001.ckpt", "step000002.ckpt",
        "step000002.ckpt.incomplete"]
    for name in ("last.ckpt", "step000002.ckpt"):
        ckpt = torch.load(folder / name, map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 2  # step 1 ran again from the step-1 checkpoint

    for path in folder.glob("*.ckpt"):
        path.write_bytes(b"")
    caplog.clear()
    assert resolve_ckpt_path("auto", run) is None
    assert "none of the 3 checkpoints" in caplog.text and "starting fresh" in caplog.text
    caplog.clear()
    assert resolve_ckpt_path("auto", tmp_path / "nothing") is None
    assert "no checkpoint in" in caplog.text and "starting fresh" in caplog.text


# ------------------------------------------------------------------ 4. divergence
def test_nonfinite_loss_stops_the_run_with_a_nonzero_exit(tmp_path):
    """optim.lr=1e12 blows the student up after one step: the run stops at step 1, exits
    non-zero, and no checkpoint holds non-finite weights."""
    from src.utils.config import PROJECT_ROOT

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "src.train", *TINY_RUN, "max_steps=3", "optim.lr=1e12",
           f"paths.output_dir={out}", "hydra.run.dir=" + str(tmp_path / "hydra")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "FloatingPointError: training diverged at global step" in proc.stderr, \
        proc.stderr[-3000:]
    assert "(guided phase" in proc.stderr
    assert "the loss is nan" in proc.stderr or "became non-finite" in proc.stderr
    assert "lower optim.lr (now 1e+12)" in proc.stderr
    assert not (out / "metrics.json").exists()
    for path in (out / "checkpoints").glob("*.ckpt"):
        assert _student_weights_finite(path), path


def test_nonfinite_teacher_scores_stop_training(clip_files, tmp_path):
    """A teacher whose image tower holds NaN weights labels every pixel with garbage, and the
    loss stays finite: the run stops at step 0 on the teacher's scores."""
    from src.train import train

    state = torch.load(clip_files / "tiny-vit.pt", weights_only=True)
    state["visual.proj"] = torch.full_like(state["visual.proj"], float("nan"))
    broken = tmp_path / "nan-vit.pt"
    torch.save(state, broken)
    out = tmp_path / "run"
    cfg = compose_train([*TINY_RUN, f"teacher.pretrained={broken}",
                         f"paths.output_dir={out}"])
    with pytest.raises(FloatingPointError) as err:
        train(cfg)
    message = str(err.value)
    assert message.startswith("training diverged at global step 0 (guided phase")
    assert "the teacher's scores have" in message and "non-finite values" in message
    assert str(broken) in message and "teacher.autocast_dtype=float32" in message
    assert not list(out.rglob("*.ckpt"))


def test_a_batch_without_labelled_pixels_is_not_divergence():
    from src.models.losses import segmentation_cross_entropy

    logits = torch.randn(2, 5, 8, 8)
    void = torch.full((2, 8, 8), 255, dtype=torch.long)
    for average in ("valid_pixels", "all_pixels"):
        loss = segmentation_cross_entropy(logits, void, 255, average)
        assert torch.isfinite(loss) and loss == 0


# ------------------------------------------------------------------ 5. output folder
def test_unwritable_output_dir_fails_before_anything_is_built(tmp_path, monkeypatch):
    import src.train as train_module

    def must_not_run(cfg):
        raise AssertionError("the model was built before the output folder was checked")

    monkeypatch.setattr(train_module, "build_module", must_not_run)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "run"
    cfg = compose_train([*TINY_RUN, f"paths.output_dir={out}"])
    with pytest.raises(PermissionError) as err:
        train_module.train(cfg)
    message = str(err.value)
    assert message.startswith(f"paths.output_dir={out} cannot be created or written (")
    assert "paths.output_dir=/path/to/run" in message and "hydra.run.dir=" in message
