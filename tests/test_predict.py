"""src.predict, src.label and segment(): outputs, bad input, resume, tiling, multi-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.fixtures import write_folder_fixture
from src.utils.config import PROJECT_ROOT
from src.utils.experiments import compose_config
from src.utils.visualize import make_palette

CPU = ["trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "num_workers=0"]
TINY = ["teacher=tiny", "prompts=single", *CPU]


def _images(root: Path, n: int = 3, size=(40, 56)) -> Path:
    """A folder of n generated RGB images (the folder fixture's images/)."""
    return write_folder_fixture(root, n=n, size=size, with_masks=False) / "images"


def _predict(overrides):
    """As `python -m src.predict ...`: comma class lists are rewritten before Hydra."""
    from src.predict import class_list_argv, predict

    return predict(compose_config("predict", class_list_argv(overrides)))


def _label(overrides, callbacks=None):
    from src.label import label
    from src.predict import class_list_argv

    return label(compose_config("label", class_list_argv(overrides)), callbacks=callbacks)


# --------------------------------------------------------------------------- classes=


def test_comma_classes_are_rewritten_before_hydra(tmp_path):
    from src.predict import class_list_argv

    vocab = tmp_path / "v.txt"
    vocab.write_text("a\nb\n")
    argv = ["prog", "classes=cat,dog,red car", "out=x", "classes=[a,b]", f"classes={vocab}",
            "classes=cat"]
    assert class_list_argv(argv) == ["prog", "classes=['cat','dog','red car']", "out=x",
                                     "classes=[a,b]", f"classes={vocab}", "classes=cat"]


def test_predict_cli_comma_form_writes_palette_pngs_and_overlays(tmp_path):
    """`python -m src.predict images=<folder> classes=red,green,blue`: the literal comma form."""
    images = _images(tmp_path / "in", n=3)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "src.predict", f"images={images}", "classes=red,green,blue",
           f"out={out}", "confidence=npy", *TINY]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    inputs = sorted(images.glob("*.jpg")) + sorted(images.glob("*.png"))
    labels = sorted((out / "labels").glob("*.png"))
    assert len(labels) == len(inputs) == 3
    assert len(list((out / "overlays").glob("*.png"))) == 3
    assert len(list((out / "confidence").glob("*.npy"))) == 3
    palette = make_palette(3)
    for label_path in labels:
        source = next(p for p in inputs if p.stem == label_path.stem)
        with Image.open(label_path) as im, Image.open(source) as src:
            assert im.mode == "P" and im.size == src.size
            values = np.unique(np.asarray(im))
            flat = np.asarray(im.getpalette()[:9]).reshape(3, 3)
        assert set(values.tolist()) <= {0, 1, 2}
        assert np.array_equal(flat, palette[:3])  # the palette maps index i to class i's colour
        with Image.open(out / "overlays" / label_path.name) as overlay:
            assert overlay.size == src.size
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 3 and summary["settings"]["classes"] == ["red", "green",
                                                                              "blue"]
    for record in summary["images"].values():
        assert abs(sum(record["areas"].values()) - 1.0) < 1e-3


def test_predict_list_form_matches_segment_api(tmp_path):
    """`classes='[a,b,c]'` through predict, and segment() on one image give the same labels."""
    from src.predict import segment

    images = _images(tmp_path / "in", n=2)
    out = tmp_path / "out"
    summary = _predict([f"images={images}", "classes=[red,green,blue]", f"out={out}", *TINY])
    assert summary["num_images"] == 2
    first = sorted(images.iterdir())[0]
    labels, probs = segment(first, ["red", "green", "blue"], teacher="tiny",
                            overrides=["prompts=single"])
    with Image.open(first) as im:
        assert labels.shape == (im.height, im.width)
    assert probs.shape == (3, *labels.shape)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    assert np.array_equal(labels, probs.argmax(0))
    with Image.open(out / "labels" / f"{first.stem}.png") as im:
        assert np.array_equal(np.asarray(im), labels)


def test_class_list_errors():
    from src.predict import load_classes

    with pytest.raises(ValueError, match="empty"):
        load_classes([])
    with pytest.raises(ValueError, match="more than once"):
        load_classes(["cat", "dog", "cat"])
    with pytest.raises(ValueError, match="classes= is required"):
        load_classes(None)
    assert load_classes("cat,dog").names == ("cat", "dog")


# --------------------------------------------------------------------------- bad input


def test_image_modes_are_converted():
    from src.data.images import to_rgb_uint8

    gray = Image.fromarray(np.array([[0, 128, 255]], dtype=np.uint8), mode="L")
    assert to_rgb_uint8(gray).tolist() == [[[0] * 3, [128] * 3, [255] * 3]]
    rgba = Image.new("RGBA", (2, 1), (10, 20, 30, 0))
    assert to_rgb_uint8(rgba).tolist() == [[[10, 20, 30]] * 2]
    pal = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    assert to_rgb_uint8(pal).tolist() == [[[0, 0, 0], [200, 100, 50]]]
    deep = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    assert deep.mode.startswith("I;16")
    assert to_rgb_uint8(deep)[0, :, 0].tolist() == [0, 128, 255]  # scaled, not clipped


def test_bad_images_are_skipped_and_odd_modes_labelled(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(folder / "rgb.png")
    Image.new("L", (48, 40), 90).save(folder / "gray.png")
    Image.new("RGBA", (40, 48), (0, 0, 255, 128)).save(folder / "rgba.png")
    Image.fromarray(np.full((40, 40), 40000, dtype=np.uint16)).save(folder / "deep.png")
    Image.new("RGB", (5, 3), (0, 200, 0)).save(folder / "tiny.png")  # smaller than one patch
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "out"
    summary = _predict([f"images={folder}", "classes=red,green,blue", f"out={out}", *TINY])
    assert summary["num_images"] == 5 and summary["num_skipped"] == 1
    assert summary["skipped"][0]["image"].endswith("broken.jpg")
    with Image.open(out / "labels" / "tiny.png") as im:
        assert im.size == (5, 3)
    with Image.open(out / "labels" / "deep.png") as im:
        assert im.size == (40, 40)


def test_unwritable_output_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    images = _images(tmp_path / "in", n=1)
    with pytest.raises(PermissionError, match="not writable.*out="):
        _predict([f"images={images}", "classes=a,b", f"out={blocker / 'sub'}", *TINY])


def test_no_images_names_the_pattern(tmp_path):
    from src.data.images import list_images

    with pytest.raises(FileNotFoundError, match="nothing_here"):
        list_images(tmp_path / "nothing_here" / "*.jpg")


def test_default_weights_offline_fail_fast_with_the_way_out():
    """ViT-B/16 OpenAI is the default; offline with no local copy, one clear message."""
    from src.models.clip_loading import WeightsUnavailableError
    from src.predict import build_labeller

    cfg = compose_config("predict", ["images=x", "classes=[a,b]", "out=.", *CPU])
    assert cfg.teacher.model_name == "ViT-B-16" and cfg.teacher.pretrained == "openai"
    with pytest.raises(WeightsUnavailableError, match="teacher.pretrained=.*teacher=world"):
        build_labeller(cfg)


def test_cached_hub_weights_are_found_without_network(tmp_path):
    """A tag whose file sits in the Hugging Face cache loads from there, offline."""
    from src.models.clip_loading import locate_pretrained

    repo = tmp_path / "models--timm--vit_base_patch16_clip_224.openai"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    weights = snapshot / "open_clip_pytorch_model.bin"
    weights.write_bytes(b"")
    assert locate_pretrained("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path)) == str(
        weights)


# --------------------------------------------------------------------------- tiled labels


def _reference_labels(scores, size, stride, temperature=10.0):
    up = F.interpolate(scores[None], size=(scores.shape[1] * stride, scores.shape[2] * stride),
                       mode="bilinear", align_corners=False)[0, :, :size[0], :size[1]]
    probs = torch.softmax(temperature * up, 0)
    return probs.argmax(0), probs.max(0).values


def test_label_tiles_equal_full_resolution_reference():
    from src.models.inference import label_tiles

    torch.manual_seed(0)
    scores = torch.randn(5, 6, 9)
    to_probs = lambda s: torch.softmax(10.0 * s, 1)  # noqa: E731
    labels, conf, _ = label_tiles(scores, (48, 72), (48, 72), 8, to_probs, max_elements=5 * 72 * 7)
    ref_labels, ref_conf = _reference_labels(scores, (48, 72), 8)
    assert torch.equal(labels, ref_labels)
    torch.testing.assert_close(conf, ref_conf, atol=1e-5, rtol=1e-5)


def test_label_tiles_do_not_depend_on_the_tile_size():
    from src.models.inference import label_tiles

    torch.manual_seed(1)
    scores = torch.randn(4, 7, 5)
    to_probs = lambda s: torch.softmax(s, 1)  # noqa: E731
    whole = label_tiles(scores, (52, 37), (131, 97), 8, to_probs, keep_probs=True)
    for rows in (1, 3, 50):
        tiled = label_tiles(scores, (52, 37), (131, 97), 8, to_probs,
                            max_elements=rows * 4 * 97, keep_probs=True)
        assert torch.equal(tiled[0], whole[0])
        torch.testing.assert_close(tiled[2], whole[2])


def test_teacher_labeller_matches_teacher_forward(tiny_vit):
    """At output = input size, the tiled labeller reproduces the teacher's own probabilities."""
    from src.models.labeller import DenseLabeller

    tiny_vit.set_vocabulary(["red", "green", "blue"], "single")
    labeller = DenseLabeller(tiny_vit, tiny_vit.vocabulary, tiny_vit.output_stride)
    image = torch.randn(3, 64, 80)
    labels, conf, probs = labeller.label(image, keep_probs=True)
    expected = tiny_vit(image[None])[0]
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(labels, expected.argmax(0))


def test_background_threshold_and_words(tiny_vit):
    from src.models.labeller import (STUFF_BACKGROUND_WORDS, BackgroundConfig, DenseLabeller,
                                     with_background)
    from src.prompts.vocabulary import ClassVocabulary

    vocab = with_background(ClassVocabulary.from_names(["cat", "dog"]),
                            BackgroundConfig(words="stuff", threshold=0.9))
    assert vocab.names == ("background", "cat", "dog")
    assert vocab.queries[0] == STUFF_BACKGROUND_WORDS and len(STUFF_BACKGROUND_WORDS) == 26
    tiny_vit.set_vocabulary(vocab, "single")
    plain = DenseLabeller(tiny_vit, vocab, 8)
    thresholded = DenseLabeller(tiny_vit, vocab, 8, background_threshold=0.9)
    image = torch.randn(3, 48, 48)
    labels, conf, _ = plain.label(image)
    bg_labels, _, _ = thresholded.label(image)
    unsure = conf < 0.9
    assert torch.equal(bg_labels[unsure], torch.zeros_like(bg_labels[unsure]))
    assert torch.equal(bg_labels[~unsure], labels[~unsure])
    with pytest.raises(ValueError, match="background class 0"):
        DenseLabeller(tiny_vit, ClassVocabulary.from_names(["cat", "dog"]), 8,
                      background_threshold=0.5)


def test_large_image_goes_through_the_sliding_window(tmp_path):
    """A 1536×1280 image at native size, sliding window: labels at full size, bounded tiles."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (1280, 1536, 3), dtype=np.uint8)).save(folder / "big.png")
    out = tmp_path / "out"
    _predict([f"images={folder}", "classes=red,green,blue", f"out={out}", "scale=null",
              "inference=slide", "inference.crop_size=[128,128]", "inference.stride=[128,128]",
              "inference.crop_batch_size=32", "overlays=false", *TINY])
    with Image.open(out / "labels" / "big.png") as im:
        assert im.size == (1536, 1280)


@pytest.mark.slow
def test_8k_image_labels_within_bounded_memory(tmp_path):
    """8192×8192 through the sliding window; peak RSS stays far below full-res logits."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (8192, 8192), (30, 140, 40)).save(folder / "huge.png")
    overrides = [f"images={folder}", "classes=cocostuff", f"out={tmp_path / 'out'}",
                 "scale=null", "inference=slide", "inference.crop_size=[256,256]",
                 "inference.stride=[256,256]", "inference.crop_batch_size=64", "overlays=false",
                 *TINY]
    code = ("import resource\n"
            "from src.predict import predict\n"
            "from src.utils.experiments import compose_config\n"
            f"predict(compose_config('predict', {overrides!r}))\n"
            "print('PEAK_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak = float(proc.stdout.split("PEAK_MB")[1])
    # Full-resolution logits alone would be 171 × 8192² × 4 B ≈ 46 GB.
    assert peak < 8000, peak
    with Image.open(tmp_path / "out" / "labels" / "huge.png") as im:
        assert im.size == (8192, 8192)


# --------------------------------------------------------------------------- src.label


class _FailAfter:
    """Fault injection: raise after N batches were written (a killed job)."""

    def __init__(self, batches: int) -> None:
        from lightning.pytorch.callbacks import Callback

        class _Callback(Callback):
            def on_predict_batch_end(cb, trainer, *args, **kwargs):  # noqa: N805
                cb.count = getattr(cb, "count", 0) + 1
                if cb.count >= batches:
                    raise RuntimeError("injected fault")

        self.callback = _Callback()


def test_label_killed_then_resumed_is_complete_and_loads(tmp_path):
    from src.data.datamodule import SegDataModule

    images = _images(tmp_path / "in", n=6)
    out = tmp_path / "labels"
    common = [f"images={images}", "classes=red,green,blue", f"out={out}", "batch_size=1",
              "threshold=0.34", *TINY]
    with pytest.raises(RuntimeError, match="injected fault"):
        _label(common, callbacks=[_FailAfter(2).callback])
    first = {p: p.stat().st_mtime_ns for p in (out / "masks").glob("*.png")}
    assert len(first) == 2
    assert not list(out.rglob("*.tmp")), "a killed run left a partial file"
    report = _label(common)
    assert report["num_images"] == 6
    # Resumed: the two finished files were skipped, not rewritten.
    assert {p: p.stat().st_mtime_ns for p in first} == first
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 6 and len(list((out / "images").iterdir())) == 6
    for mask in masks:
        with Image.open(mask) as im:
            values = set(np.unique(np.asarray(im)).tolist())
        assert values <= {0, 1, 2, 255}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_name"] == "tiny-vit" and manifest["threshold"] == 0.34
    assert manifest["code_version"]
    datamodule = SegDataModule(dataset="folder", root=str(out), vocabulary=str(out / "classes.txt"),
                               test_scale=(64, 64), crop_size=(32, 32), num_workers=0)
    datamodule.set_normalization((0.5,) * 3, (0.25,) * 3)
    datamodule.setup("test")
    assert len(datamodule.test_set) == 6
    assert int(datamodule.test_set[0]["mask"].max()) in (0, 1, 2, 255)


def test_label_a_configured_dataset(tmp_path):
    out = tmp_path / "world_labels"
    report = _label(["data=world", "+data.dataset_kwargs.num_images=3", "teacher=world",
                     "prompts=world", "scale=null", f"out={out}", *CPU])
    assert report["num_images"] == 3
    classes = (out / "classes.txt").read_text().splitlines()
    assert classes[0].startswith("grass") and len(classes) == 12


def test_label_ddp_spawn_two_processes_no_duplicates(tmp_path):
    images = _images(tmp_path / "in", n=5)
    out = tmp_path / "labels"
    report = _label([f"images={images}", "classes=red,green,blue", f"out={out}", "batch_size=1",
                     "trainer.devices=2", "trainer.strategy=ddp_spawn", *TINY])
    assert report["num_images"] == 5
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == sorted(
        p.stem for p in images.iterdir())


def test_student_checkpoint_predicts_and_new_classes_use_its_teacher(tmp_path):
    from src.train import train

    run = tmp_path / "train"
    train(compose_config("train", [
        "experiment=world_annofree", "logger=csv", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "global_batch_size=2",
        "data.dataset_kwargs.num_images=4", "max_steps=2", "val_every=2", "checkpoint_every=2",
        "test_after_fit=false", f"paths.output_dir={run}"]))
    ckpt = run / "checkpoints" / "last.ckpt"
    images = _images(tmp_path / "in", n=2, size=(48, 64))
    own = _predict([f"images={images}", f"ckpt_path={ckpt}", f"out={tmp_path / 'own'}", *CPU])
    assert own["settings"]["model"] == "student" and len(own["settings"]["classes"]) == 12
    new = _predict([f"images={images}", f"ckpt_path={ckpt}", "classes=grass,sky",
                    f"out={tmp_path / 'new'}", *CPU])
    assert new["settings"]["classes"] == ["grass", "sky"]
    for record in new["images"].values():
        assert set(record["areas"]) <= {"grass", "sky"}
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state["maskclip_plus"]["teacher"]["pretrained"] = str(tmp_path / "gone.safetensors")
    broken = tmp_path / "broken.ckpt"
    torch.save(state, broken)
    with pytest.raises(ValueError, match="need its teacher's text tower"):
        _predict([f"images={images}", f"ckpt_path={broken}", "classes=grass,sky",
                  f"out={tmp_path / 'x'}", *CPU])


def test_gpu_autocast_is_off_on_cpu_and_checks_its_dtype():
    from src.utils.precision import gpu_autocast

    with gpu_autocast("cpu", "bfloat16"):
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.float32  # no autocast on the CPU, whatever the dtype
    with pytest.raises(ValueError, match="bfloat16"):
        gpu_autocast("cpu", "bf16")
