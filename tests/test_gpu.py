"""Checks that need a CUDA device (``pytest -m gpu``); skipped, and deselected by ``make test``,
on a machine without one. They hold the GPU path to the CPU's fp32 results."""

from __future__ import annotations

import pytest
import torch

from src.utils.config import PROJECT_ROOT

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CHECKPOINT = PROJECT_ROOT / "assets" / "world_clip" / "world-vit.safetensors"


def _world_test_split(teacher):
    from src.data.transforms import build_eval_transform
    from src.data.world import WorldDataset

    dataset = WorldDataset(split="test", transform=build_eval_transform(
        (96, 96), teacher.image_mean, teacher.image_std))
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    masks = torch.stack([dataset[i]["mask"] for i in range(len(dataset))])
    return images, masks


def _cpu_and_gpu_labels(teacher, images: torch.Tensor, dtype: str, chunk: int):
    """Labels of ``images`` (N×3×H×W) on the CPU in fp32, then on the GPU under ``dtype``
    autocast (the teacher is moved there): two N×H×W tensors on the CPU."""
    from src.utils.precision import gpu_autocast

    cpu_labels = torch.cat([teacher(part).argmax(1) for part in images.split(chunk)])
    teacher = teacher.cuda()
    with gpu_autocast("cuda", dtype):
        gpu_labels = torch.cat([teacher(part.cuda()).argmax(1).cpu()
                                for part in images.split(chunk)])
    return cpu_labels, gpu_labels


def _miou(labels: torch.Tensor, masks: torch.Tensor) -> float:
    from src.data.world import CLASSES
    from src.metrics.segmentation import SegmentationIoU

    metric = SegmentationIoU(len(CLASSES))
    metric.update(labels.cpu(), masks)
    return 100 * metric.summary()["mIoU"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_world_teacher_under_gpu_autocast_matches_cpu_fp32(dtype):
    """The committed world CLIP on the test split: labels on the GPU under autocast agree with the
    CPU's fp32 labels on nearly every pixel, and the mIoU moves by less than half a point."""
    from src.models.teacher import MaskCLIPTeacher

    teacher = MaskCLIPTeacher("world-vit", str(CHECKPOINT), cache_dir=None,
                              vocabulary="world", templates="world")
    images, masks = _world_test_split(teacher)
    cpu_labels, gpu_labels = _cpu_and_gpu_labels(teacher, images, dtype, chunk=50)
    agreement = (gpu_labels == cpu_labels).float().mean().item()
    cpu_miou, gpu_miou = _miou(cpu_labels, masks), _miou(gpu_labels, masks)
    print(f"{dtype}: pixel agreement {agreement:.4f}, mIoU cpu {cpu_miou:.2f} gpu {gpu_miou:.2f}")
    assert agreement >= 0.98, agreement
    assert abs(gpu_miou - cpu_miou) <= 0.5, (cpu_miou, gpu_miou)


@pytest.mark.parametrize("head", ["scclip", "resclip", "proxyclip_world"])
def test_frontier_heads_under_gpu_autocast_match_cpu_fp32(head):
    """Each frontier head on the world (ProxyCLIP with the world's proxy), composed as the
    heads table composes it: bf16 autocast on the GPU labels like fp32 on the CPU (the hard
    decisions run in fp32 inside each head)."""
    from src.builders import build_teacher
    from src.utils.experiments import compose_config

    cfg = compose_config("eval", ["experiment=world_maskclip", f"teacher/head={head}"])
    teacher = build_teacher(cfg)
    teacher.set_vocabulary("world", "world")
    images, masks = _world_test_split(teacher)
    images, masks = images[:64], masks[:64]
    cpu_labels, gpu_labels = _cpu_and_gpu_labels(teacher, images, "bfloat16", chunk=16)
    agreement = (gpu_labels == cpu_labels).float().mean().item()
    cpu_miou, gpu_miou = _miou(cpu_labels, masks), _miou(gpu_labels, masks)
    print(f"{head}: pixel agreement {agreement:.4f}, mIoU cpu {cpu_miou:.2f} gpu {gpu_miou:.2f}")
    assert agreement >= 0.97, agreement
    assert abs(gpu_miou - cpu_miou) <= 1.0, (cpu_miou, gpu_miou)


def test_sliding_window_crop_batches_agree_on_gpu():
    """Every crop of a 2:1 (Cityscapes-shaped) image in one forward gives the one-crop-at-a-time
    scores."""
    from src.models.inference import InferenceConfig, slide_scores
    from src.models.teacher import MaskCLIPTeacher

    torch.manual_seed(0)
    teacher = MaskCLIPTeacher("tiny-vit", None, cache_dir=None).cuda()
    teacher.set_vocabulary([f"class {i}" for i in range(19)], "single")
    image = torch.randn(1, 3, 256, 512, device="cuda")

    def scores(batch):
        cfg = InferenceConfig(mode="slide", crop_size=64, stride=32, crop_batch_size=batch)
        return slide_scores(lambda crops: teacher.query_scores(crops)[0], image,
                            teacher.output_stride, cfg)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    one, many = scores(1), scores(64)
    assert torch.allclose(one, many, atol=1e-4, rtol=1e-4), (one - many).abs().max()


def test_world_student_trains_on_gpu_in_bf16(tmp_path):
    """MaskCLIP+ on the GPU (bf16-mixed): the annotation-free student beats its teacher, as on
    the CPU (tests/test_world_clip.py), and the teacher stays frozen and out of the checkpoint."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from src.train import train
    from src.utils.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "experiment=world_annofree", "max_steps=200", "val_every=200",
            "checkpoint_every=200", "logger=csv", "trainer.accelerator=gpu",
            "trainer.devices=1", "trainer.precision=bf16-mixed",
            "trainer.enable_progress_bar=false", f"paths.output_dir={tmp_path}"])
    metrics = train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert not any(k.startswith("teacher") for k in ckpt["state_dict"])
    from src.models.teacher import MaskCLIPTeacher

    teacher = MaskCLIPTeacher("world-vit", str(CHECKPOINT), cache_dir=None,
                              vocabulary="world", templates="world")
    images, masks = _world_test_split(teacher)
    teacher_miou = _miou(torch.cat([teacher(c).argmax(1) for c in images.split(50)]), masks)
    print(f"GPU bf16 student {metrics['test/mIoU']:.2f} vs teacher {teacher_miou:.2f}")
    assert metrics["test/mIoU"] >= teacher_miou + 2.0, (metrics["test/mIoU"], teacher_miou)


def test_src_label_and_src_eval_on_gpu_match_the_cpu(tmp_path):
    """The entry points on CUDA (bf16 autocast in the LitModules): src.label writes the CPU's
    masks on nearly every pixel, and src.eval gives the CPU's world mIoU within half a point."""
    import numpy as np
    from PIL import Image

    from src.eval import evaluate
    from src.label import label
    from src.utils.experiments import compose_config

    common = ["data=world", "+data.dataset_kwargs.num_images=40", "teacher=world",
              "prompts=world", "scale=null", "trainer.enable_progress_bar=false",
              "num_workers=0"]
    for device in ("cpu", "gpu"):
        label(compose_config("label", [*common, f"out={tmp_path / device}",
                                       f"trainer.accelerator={device}"]))
    cpu_masks = sorted((tmp_path / "cpu" / "masks").glob("*.png"))
    assert len(cpu_masks) == 40
    agree = [np.mean(np.asarray(Image.open(p)) ==
                     np.asarray(Image.open(tmp_path / "gpu" / "masks" / p.name)))
             for p in cpu_masks]
    print(f"src.label cpu vs gpu pixel agreement {np.mean(agree):.4f}")
    assert np.mean(agree) >= 0.98

    results = {}
    for device in ("cpu", "gpu"):
        cfg = compose_config("eval", ["experiment=world_maskclip", "logger=csv",
                                      f"paths.output_dir={tmp_path / ('eval_' + device)}",
                                      "trainer.enable_progress_bar=false",
                                      f"trainer.accelerator={device}"])
        results[device] = evaluate(cfg)["summary"]["mIoU"]
    print(f"src.eval world mIoU cpu {results['cpu']:.2f} gpu {results['gpu']:.2f}")
    assert abs(results["gpu"] - results["cpu"]) <= 0.5, results
