"""MaskCLIP+ training: experiments through src.train, phases, rounds, the frozen teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from src.models.maskclip_plus_module import MaskCLIPPlusLitModule, poly_lr_factor
from src.utils.config import CONFIG_DIR
from tests.test_eval import (check_reported_iou, entry_point, ground_truth_classes, nanmean,
                             read_per_class_csv)

# Training experiments are those that select a MaskCLIP+ student (the `student` config group,
# which only conf/train.yaml composes); tests/test_eval.py checks that each of them composes
# under train.yaml and not under eval.yaml.
TRAIN_EXPERIMENTS = [p for p in sorted(Path(CONFIG_DIR, "experiment").glob("*.yaml"))
                     if entry_point(p) == "src.train"]

COMMON = ["teacher=tiny", "student=tiny", "logger=csv", "trainer.accelerator=cpu",
          "trainer.enable_progress_bar=false", "global_batch_size=2", "data.num_workers=0"]
FAST = [*COMMON, "data.dataset_kwargs.num_images=8"]  # the offline world


def fast_overrides(experiment: Path, data_dir: Path, tmp_path: Path) -> list[str]:
    if experiment.stem == "world_from_labels":
        # Offline labels in the folder layout src.label writes (here: a fixture of it).
        from tests.fixtures import write_folder_fixture
        from src.data.world import CLASSES

        root = write_folder_fixture(tmp_path / "labels", class_names=CLASSES, n=4, size=(48, 64))
        return [*COMMON, f"data.root={root}", "data.crop_size=[32,32]",
                "data.test_scale=[64,64]"]
    if experiment.stem.startswith("world"):
        return FAST
    # Real-data recipes on fixtures in the real layouts, with a tiny student and small crops.
    return [*COMMON, f"paths.data_dir={data_dir}", "data.crop_size=[32,32]",
            "data.train_scale=[64,32]", "data.test_scale=[64,32]"]


def compose_train(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.mark.parametrize("experiment", TRAIN_EXPERIMENTS, ids=lambda p: p.stem)
def test_train_experiment_runs_through_src_train(experiment, tmp_path, data_dir):
    from src.train import train

    cfg = compose_train([f"experiment={experiment.stem}",
                         *fast_overrides(experiment, data_dir, tmp_path),
                         "max_steps=4", "val_every=4",
                         "checkpoint_every=4", f"paths.output_dir={tmp_path}"])
    metrics = train(cfg)
    assert "val/mIoU" in metrics and "train/loss" in metrics
    assert ("test/mIoU" in metrics) == cfg.test_after_fit
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert not any(k.startswith("teacher") for k in ckpt["state_dict"])  # rebuilt from its spec
    assert ckpt["maskclip_plus"]["teacher"]["model_name"] == "tiny-vit"
    assert "student.class_embeddings" in ckpt["state_dict"]
    panels = list(tmp_path.rglob("overlays/val_panel_*.png"))
    assert panels, "validation panels (image | GT | teacher | student) were not logged"
    import json

    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == pytest.approx(metrics, nan_ok=True)
    if not cfg.test_after_fit:
        return
    # The reported test metrics are those of the per-class table the run wrote ...
    rows = read_per_class_csv(tmp_path)
    summary = {key: metrics[f"test/{key}"] for key in ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU")
               if f"test/{key}" in metrics}
    names = [row["class"] for row in rows]
    check_reported_iou(summary, {row["class"]: float(row["iou"]) for row in rows}, names,
                       ground_truth_classes(cfg), rows)
    # ... and of the weights it saved: last.ckpt's student, run over the test split here.
    iou = checkpoint_test_iou(cfg, tmp_path / "checkpoints" / "last.ckpt")
    assert len(iou) == len(names)
    for row, want in zip(rows, iou):
        assert float(row["iou"]) == pytest.approx(want, abs=1e-4, nan_ok=True), row["class"]
    assert metrics["test/mIoU"] == pytest.approx(nanmean(iou), abs=1e-4)


def checkpoint_test_iou(cfg, ckpt: Path) -> list[float]:
    """Per-class IoU (%) of a saved student on the configured test split, recomputed here: its
    logits resized to the ground truth as ``cfg.test_resize`` says (two_step: to the network
    input first), arg-maxed, and counted in a numpy confusion matrix (255 ignored)."""
    import numpy as np
    import torch.nn.functional as F
    from hydra.utils import instantiate

    from src.models.maskclip_plus_module import load_student

    student = load_student(str(ckpt)).eval()  # forward: B×3×h×w → B×C×h'×w' logits
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    hparams = saved["hyper_parameters"]
    datamodule = instantiate(cfg.data, _convert_="all")
    # the input statistics it was trained with, as the checkpoint records them
    datamodule.set_normalization(hparams["image_mean"], hparams["image_std"], binding=True)
    datamodule.setup("test")
    num = len(saved["maskclip_plus"]["vocabulary"]["names"])
    confmat = np.zeros((num, num), dtype=np.int64)
    with torch.no_grad():
        for index in range(len(datamodule.test_set)):
            sample = datamodule.test_set[index]
            image = sample["image"][None]
            mask = np.asarray(sample["mask"]).astype(np.int64)
            logits = student(image)
            if cfg.test_resize == "two_step":
                logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear",
                                       align_corners=False)
            logits = F.interpolate(logits, size=mask.shape, mode="bilinear", align_corners=False)
            pred = logits[0].argmax(0).numpy()
            valid = mask != 255
            confmat += np.bincount(mask[valid] * num + pred[valid],
                                   minlength=num * num).reshape(num, num)
    true_pos = np.diag(confmat).astype(float)
    union = confmat.sum(0) + confmat.sum(1) - true_pos
    return [100 * tp / u if u > 0 else float("nan") for tp, u in zip(true_pos, union)]


def _module(tmp_path, **kwargs) -> MaskCLIPPlusLitModule:
    from src.train import build_module

    cfg = compose_train(["experiment=world_zs", *FAST, f"paths.output_dir={tmp_path}",
                         "max_steps=10", "guided_fraction=0.3"])
    module = build_module(cfg)
    for key, value in kwargs.items():
        setattr(module, key, value)
    return module


def test_teacher_is_frozen_and_outside_optimizer_and_checkpoint(tmp_path):
    module = _module(tmp_path)
    teacher_params = {id(p) for p in module.teacher.parameters()}
    assert teacher_params
    assert not teacher_params & {id(p) for p in module.parameters()}
    optimizer = module.configure_optimizers()["optimizer"]
    assert not teacher_params & {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not any(k.startswith("teacher") for k in module.state_dict())
    module.train()
    assert not module.teacher.training and not any(p.requires_grad
                                                   for p in module.teacher.parameters())
    # it moves with the module (Lightning places the module with .to(device); dtypes alike)
    module.to(torch.float64)
    assert {p.dtype for p in module.teacher.parameters()} == {torch.float64}
    module.to(torch.float32)
    assert {p.dtype for p in module.teacher.parameters()} == {torch.float32}
    # a checkpoint without teacher weights loads strictly; one that has them loads too
    state = module.state_dict()
    module.load_state_dict(state)
    with_teacher = {**state, **{f"teacher.{k}": v for k, v in module.teacher.state_dict().items()}}
    assert not module.load_state_dict(with_teacher).unexpected_keys


def test_phase_switch_at_configured_step(tmp_path):
    module = _module(tmp_path)
    assert module.guided_steps == 3  # 30% of 10 iterations
    assert [module.phase_at(s) for s in (0, 2, 3, 9)] == ["guided", "guided", "self_training",
                                                           "self_training"]
    annofree = _module(tmp_path, setting="annofree")
    annofree.guided_steps = annofree.max_steps
    assert annofree.phase_at(9) == "guided"


def test_rounds_split_the_self_training_steps(tmp_path):
    module = _module(tmp_path, self_training_mode="rounds", self_training_rounds=3)
    # 7 self-training steps after 3 guided ones, split in rounds of ceil(7/3) = 3 steps
    assert [module.round_at(s) for s in range(10)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    online = _module(tmp_path)
    assert [online.round_at(s) for s in (2, 3, 9)] == [0, 1, 1]


def test_zero_shot_targets_use_teacher_then_student(tmp_path):
    module = _module(tmp_path)
    images = torch.randn(2, 3, 32, 32)
    mask = torch.randint(0, 12, (2, 32, 32))
    mask[:, :4] = 255
    logits = module.student(images)
    target, stats = module.make_targets(images, mask, logits)
    unseen = torch.tensor(module.unseen)
    hidden = torch.isin(mask, unseen)
    assert torch.equal(target[~hidden], mask[~hidden])  # seen GT kept, void kept
    assert torch.isin(target[hidden], unseen).all()  # pseudo-labels only among unseen classes
    assert 0 < stats["pseudo_coverage"] < 1


def test_poly_lr():
    assert poly_lr_factor(0, 100, 0.01, 1e-4) == pytest.approx(1.0)
    assert poly_lr_factor(100, 100, 0.01, 1e-4) == pytest.approx(0.01)
    assert poly_lr_factor(50, 100, 0.01, 1e-4) == pytest.approx(
        ((0.01 - 1e-4) * 0.5 ** 0.9 + 1e-4) / 0.01)


#: What src.train's checkpoints held before the student's decoder and the self-training snapshot
#: got their names (recorded from a run of the code at bb47962): student.head.* and labeller.*
#: weights, these student_cfg and hyper_parameters keys, and maskclip_plus.labeller_round.
OLD_STUDENT_CFG_KEYS = {"_target_", "_partial_", "backbone", "backbone_kwargs", "head",
                        "pretrained", "allow_random_init", "output_stride", "head_dilations",
                        "head_init", "channels_last"}
OLD_HPARAMS_KEYS = {"templates", "setting", "unseen", "background_index", "max_steps",
                    "guided_steps", "self_training", "lr", "momentum", "weight_decay", "min_lr",
                    "power", "num_overlays", "report_unseen", "student_cfg", "image_mean",
                    "image_std", "loss_average", "test_resize"}
OLD_EXTRA_KEYS = {"labeller_round", "vocabulary", "teacher"}
_OLD_STATE_PREFIXES = {"student.decoder.": "student.head.", "snapshot.decoder.": "labeller.head.",
                       "snapshot.": "labeller."}
_OLD_CFG_KEYS = {"decoder": "head", "decoder_init": "head_init",
                 "decoder_dilations": "head_dilations"}


def old_layout_checkpoint(ckpt: dict) -> dict:
    """A checkpoint of today's src.train rewritten in the layout the code before the renames
    wrote (``OLD_*``): what a run trained before them leaves behind."""
    state = {}
    for key, value in ckpt["state_dict"].items():
        for new, old in _OLD_STATE_PREFIXES.items():
            if key.startswith(new):
                key = old + key[len(new):]
                break
        state[key] = value
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if k in OLD_HPARAMS_KEYS}
    hparams["student_cfg"] = {_OLD_CFG_KEYS.get(k, k): v
                              for k, v in ckpt["hyper_parameters"]["student_cfg"].items()}
    extra = dict(ckpt["maskclip_plus"])
    extra["labeller_round"] = extra.pop("snapshot_round")
    old = {**ckpt, "state_dict": state, "hyper_parameters": hparams, "maskclip_plus": extra}
    assert set(hparams) == OLD_HPARAMS_KEYS and set(hparams["student_cfg"]) == OLD_STUDENT_CFG_KEYS
    assert set(extra) == OLD_EXTRA_KEYS
    assert not any(k.startswith(("student.decoder.", "snapshot.")) for k in state)
    return old


def test_rounds_mode_checkpoints_the_frozen_snapshot_and_an_old_checkpoint_resumes(tmp_path):
    """self_training.mode=rounds: the snapshot labelling each round is frozen (out of the
    optimizer, eval mode) and saved, so a resumed run continues the round with it; a checkpoint
    written before the renames (student.head.*, labeller.*, labeller_round) resumes the same."""
    from src.train import train

    common = ["experiment=world_zs", *FAST, "max_steps=6", "val_every=6", "checkpoint_every=3",
              "guided_fraction=0.34", "self_training.mode=rounds", "self_training.rounds=2",
              "trainer.log_every_n_steps=1", "test_after_fit=false"]
    full = tmp_path / "full"
    train(compose_train([*common, f"paths.output_dir={full}"]))
    ckpt = torch.load(full / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert any(k.startswith("snapshot.decoder.") for k in ckpt["state_dict"])
    assert not any(k.startswith(("teacher", "labeller")) for k in ckpt["state_dict"])
    assert ckpt["maskclip_plus"]["snapshot_round"] == 2
    student_params = {k[len("student."):] for k in ckpt["state_dict"] if k.startswith("student.")}
    assert {k[len("snapshot."):] for k in ckpt["state_dict"]
            if k.startswith("snapshot.")} == student_params
    # the optimizer holds the student's parameters only (not the snapshot's, not the teacher's)
    student_tensors = sum(1 for k, v in ckpt["state_dict"].items()
                          if k.startswith("student.") and "running_" not in k
                          and "num_batches" not in k and "class_embeddings" not in k)
    assert len(ckpt["optimizer_states"][0]["param_groups"][0]["params"]) == student_tensors

    # Round 1 (steps 2-3) is labelled by the snapshot taken at step 2: the step-3 checkpoint
    # holds it, and resuming from it must give the uninterrupted run's losses.
    mid = torch.load(full / "checkpoints" / "step000003.ckpt", map_location="cpu",
                     weights_only=False)
    assert mid["maskclip_plus"]["snapshot_round"] == 1
    old = tmp_path / "old_layout.ckpt"
    torch.save(old_layout_checkpoint(mid), old)
    resumed = tmp_path / "resumed"
    train(compose_train([*common, f"paths.output_dir={resumed}", f"ckpt_path={old}"]))
    expected, got = _losses(full), _losses(resumed)
    assert sorted(got) == [3, 4, 5]
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    again = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=False)
    assert again["maskclip_plus"]["snapshot_round"] == 2  # written in today's layout
    assert any(k.startswith("student.decoder.") for k in again["state_dict"])


def _losses(output_dir: Path) -> dict[int, float]:
    import csv

    rows = {}
    for path in output_dir.rglob("metrics.csv"):
        with open(path) as fh:
            for row in csv.DictReader(fh):
                if row.get("train/loss"):
                    rows[int(row["step"])] = float(row["train/loss"])
    return rows


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    """Killed after step 3 and resumed from its checkpoint, a run follows the same losses."""
    from src.train import train

    common = ["experiment=world_zs", *FAST, "max_steps=6", "val_every=6", "checkpoint_every=3",
              "guided_fraction=0.5", "trainer.log_every_n_steps=1", "test_after_fit=false"]
    full = tmp_path / "full"
    train(compose_train([*common, f"paths.output_dir={full}"]))
    # The mid-run checkpoint is what a killed run leaves behind.
    ckpt = full / "checkpoints" / "step000003.ckpt"
    assert ckpt.is_file(), sorted(p.name for p in (full / "checkpoints").iterdir())
    resumed = tmp_path / "resumed"
    train(compose_train([*common, f"paths.output_dir={resumed}", f"ckpt_path={ckpt}"]))
    expected, got = _losses(full), _losses(resumed)
    assert sorted(got) == [3, 4, 5]  # only the steps after the checkpoint ran again
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


def test_ddp_spawn_on_two_cpu_processes(tmp_path):
    """Two CPU ranks (gloo) train a few steps; SyncBN is off on CPU."""
    from src.train import train

    cfg = compose_train(["experiment=world_annofree", *FAST, "max_steps=2", "val_every=2",
                         "checkpoint_every=2", "trainer.devices=2", "trainer.strategy=ddp_spawn",
                         "trainer.sync_batchnorm=false", "test_after_fit=false",
                         f"paths.output_dir={tmp_path}"])
    metrics = train(cfg)
    assert "val/mIoU" in metrics
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_multirun_sweep_two_by_two(tmp_path):
    """`python -m src.train -m ... refine=none,ks prompts=single,world`: one job per combination."""
    import os
    import subprocess
    import sys

    from src.utils.config import PROJECT_ROOT

    cmd = [sys.executable, "-m", "src.train", "-m", "experiment=world_annofree",
           "refine=none,ks", "prompts=single,world", *FAST, "max_steps=2", "val_every=2",
           "checkpoint_every=2", "test_after_fit=false", f"paths.log_dir={tmp_path}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(tmp_path.rglob("metrics.json"))
    assert len(runs) == 4
    overrides = {p.parent.joinpath(".hydra", "overrides.yaml").read_text() for p in runs}
    assert len(overrides) == 4
    # the sweep's table: one row per job, the two varying overrides, val mIoU (no test here)
    import csv
    import json

    (summary,) = tmp_path.rglob("summary.csv")
    with summary.open() as f:
        table = list(csv.DictReader(f))
    assert {(t["refine"], t["prompts"]) for t in table} == {
        (r, p) for r in ("none", "ks") for p in ("single", "world")}
    for row in table:
        metrics = json.loads((summary.parent / row["run_dir"] / "metrics.json").read_text())
        assert row["state"] == "completed" and row["split"] == "val"
        assert float(row["mIoU"]) == pytest.approx(metrics["val/mIoU"], abs=0.005)


def test_student_checkpoint_alone_evaluates_with_src_eval(tmp_path):
    """`python -m src.eval ckpt_path=...` rebuilds the student from the checkpoint alone."""
    from src.eval import evaluate
    from src.prompts.vocabulary import load_vocabulary
    from src.train import train

    train_dir = tmp_path / "train"
    metrics = train(compose_train(["experiment=world_zs", *FAST, "max_steps=2", "val_every=2",
                                   "checkpoint_every=2", f"paths.output_dir={train_dir}"]))
    ckpt = train_dir / "checkpoints" / "last.ckpt"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="eval", overrides=[
            "data=world", "+data.dataset_kwargs.num_images=8", f"ckpt_path={ckpt}",
            # the student sees the statistics it was trained with (CLIP's), whatever data.* says
            "data.normalize=imagenet",
            "logger=csv", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
            f"paths.output_dir={tmp_path / 'eval'}"])
    results = evaluate(cfg)
    assert results["summary"]["mIoU"] == pytest.approx(metrics["test/mIoU"], abs=1e-4)
    assert set(results["summary"]) == {"mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"}
    # per class, like the teacher's results: the mIoU is their mean over the classes that have one
    assert list(results["per_class"]) == list(load_vocabulary("world").names)
    assert results["summary"]["mIoU"] == pytest.approx(nanmean(results["per_class"].values()),
                                                       abs=1e-4)


def test_old_student_command_line_keys_still_compose_and_warn(tmp_path):
    """`student.head=deeplabv3plus` (the key before the rename) composes, builds that decoder
    with a warning naming student.decoder, and the checkpoint config records the new key."""
    from src.models.student import DeepLabV3PlusDecoder
    from src.train import build_module

    cfg = compose_train(["experiment=world_zs", *FAST, f"paths.output_dir={tmp_path}",
                         "student.head=deeplabv3plus", "student.head_init=kaiming"])
    warning = r"student\.head is deprecated: use student\.decoder"
    with pytest.warns(FutureWarning, match=warning):
        module = build_module(cfg)
    assert isinstance(module.student.decoder, DeepLabV3PlusDecoder)
    saved = module.hparams["student_cfg"]
    assert (saved["decoder"], saved["decoder_init"]) == ("deeplabv3plus", "kaiming")
    assert not {"head", "head_init", "head_dilations"} & set(saved)


def test_loading_a_foreign_checkpoint_fails_clearly(tmp_path):
    from src.models.maskclip_plus_module import load_student

    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a MaskCLIP\\+ student checkpoint"):
        load_student(str(path))


def test_supervised_setting_uses_ground_truth_only(tmp_path):
    module = _module(tmp_path, setting="supervised")
    images = torch.randn(1, 3, 32, 32)
    mask = torch.randint(0, 12, (1, 32, 32))
    target, stats = module.make_targets(images, mask, module.student(images))
    assert torch.equal(target, mask) and stats == {}


def test_per_device_batch_and_accumulation():
    from src.utils.devices import per_device_batch

    assert per_device_batch(16, 4) == (4, 1)  # the official 4 GPUs × 4
    assert per_device_batch(16, 8) == (2, 1)
    assert per_device_batch(16, 1, max_device_batch=4) == (4, 4)  # 1 GPU: 4 × 4 accumulated
    assert per_device_batch(16, 2, max_device_batch=3) == (2, 4)
    with pytest.raises(ValueError, match="does not split over 3 devices"):
        per_device_batch(16, 3)


def test_slurm_launcher_composes_one_task_per_gpu():
    """`-m hydra/launcher=slurm`: submitit's SLURM launcher, one task per device, as Lightning expects."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm", "experiment=voc_zs", "trainer=ddp", "trainer.devices=4",
            "trainer.num_nodes=2", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    # The plugin must be importable (it ships in the dev extra).
    from hydra.utils import get_class

    get_class(launcher._target_)
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert launcher.partition == "gpu"


def test_sync_batchnorm_defaults_on_for_several_gpus_only():
    from omegaconf import OmegaConf

    from src.utils.devices import use_sync_batchnorm

    auto = OmegaConf.create({"sync_batchnorm": None, "accelerator": "auto", "num_nodes": 1})
    gpu = torch.cuda.is_available()
    assert use_sync_batchnorm(auto, 8) is gpu
    assert use_sync_batchnorm(auto, 1) is False
    assert use_sync_batchnorm(OmegaConf.merge(auto, {"accelerator": "cpu"}), 8) is False
    assert use_sync_batchnorm(OmegaConf.merge(auto, {"sync_batchnorm": False}), 8) is False
    assert use_sync_batchnorm(OmegaConf.merge(auto, {"sync_batchnorm": True}), 1) is True


def test_ckpt_path_last_and_auto(tmp_path):
    from src.train import resolve_ckpt_path

    assert resolve_ckpt_path(None, tmp_path) is None
    assert resolve_ckpt_path("/x/step.ckpt", tmp_path) == "/x/step.ckpt"
    assert resolve_ckpt_path("auto", tmp_path) is None
    with pytest.raises(FileNotFoundError, match="ckpt_path=auto"):
        resolve_ckpt_path("last", tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"")
    assert resolve_ckpt_path("last", tmp_path) == str(last)  # train() then refuses it, named
    assert resolve_ckpt_path("auto", tmp_path) is None  # an empty last.ckpt is incomplete


def test_channels_last_student_follows_the_same_losses(tmp_path):
    """student.channels_last=true (NHWC convolutions) changes memory layout, not maths: the
    student's weights end up NHWC and the losses match the default layout's."""
    from src.train import train

    common = ["experiment=world_annofree", *FAST, "max_steps=3", "val_every=3",
              "checkpoint_every=3", "trainer.log_every_n_steps=1", "test_after_fit=false"]
    train(compose_train([*common, f"paths.output_dir={tmp_path / 'nchw'}",
                         "student.channels_last=false"]))
    train(compose_train([*common, f"paths.output_dir={tmp_path / 'nhwc'}",
                         "student.channels_last=true"]))
    expected, got = _losses(tmp_path / "nchw"), _losses(tmp_path / "nhwc")
    assert sorted(got) == sorted(expected) == [0, 1, 2]
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-5), step
    ckpt = torch.load(tmp_path / "nhwc" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    convs = [v for k, v in ckpt["state_dict"].items() if k.startswith("student") and v.ndim == 4]
    assert convs and all(v.is_contiguous(memory_format=torch.channels_last) for v in convs)
