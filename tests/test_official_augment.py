"""The opt-in official MaskCLIP+ (mmseg 0.20.2) training augmentation.

``photometric='mmseg'``: PhotoMetricDistortion + crop without padding + pad after normalisation;
``cat_max_ratio``: mmseg's RandomCrop retry rule with suppressed classes counted as one category.
References below are written from the mmseg 0.20.2 description, in plain numpy/cv2/random.
"""

from __future__ import annotations

import random
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.data.datamodule import SegDataModule
from src.data.transforms import (
    MMSegRandomCrop,
    PhotoMetricDistortion,
    RescaleToFit,
    build_train_transform,
    category_counts,
    photometric_distortion,
)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "data"
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


# ------------------------------------------------------------------------------------------
# PhotoMetricDistortion


def ref_convert(img: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
    out = img.astype(np.float32) * alpha + beta
    return np.clip(out, 0, 255).astype(np.uint8)


def ref_pmd(img, brightness, contrast_first, contrast, saturation, hue):
    """mmseg 0.20.2 PhotoMetricDistortion, step by step, with the draws fixed."""
    img = img.copy()
    if brightness is not None:
        img = ref_convert(img, beta=brightness)
    if contrast_first and contrast is not None:
        img = ref_convert(img, alpha=contrast)
    if saturation is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 1] = ref_convert(hsv[..., 1], alpha=saturation)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if hue is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + hue) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and contrast is not None:
        img = ref_convert(img, alpha=contrast)
    return img


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "params",
    [
        {"brightness": None, "contrast": None, "saturation": None, "hue": None},
        {"brightness": 17.3, "contrast": None, "saturation": None, "hue": None},
        {"brightness": -29.9, "contrast": None, "saturation": None, "hue": None},
        {"brightness": None, "contrast": 1.37, "saturation": None, "hue": None},
        {"brightness": None, "contrast": 0.61, "saturation": None, "hue": None},
        {"brightness": None, "contrast": None, "saturation": 1.42, "hue": None},
        {"brightness": None, "contrast": None, "saturation": 0.55, "hue": None},
        {"brightness": None, "contrast": None, "saturation": None, "hue": -18},
        {"brightness": None, "contrast": None, "saturation": None, "hue": 17},
        {"brightness": 8.25, "contrast": 1.21, "saturation": 0.77, "hue": 5},
        {"brightness": -3.5, "contrast": 0.83, "saturation": 1.33, "hue": -11},
    ],
)
@pytest.mark.parametrize("contrast_first", [False, True])
def test_photometric_distortion_matches_reference(photo, params, contrast_first):
    out = photometric_distortion(photo, contrast_first=contrast_first, **params)
    expected = ref_pmd(photo, contrast_first=contrast_first, **params)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    np.testing.assert_array_equal(out, expected)
    assert out is not photo


def test_contrast_order_matters(photo):
    kwargs = {"brightness": None, "contrast": 1.4, "saturation": 1.3, "hue": 9}
    first = photometric_distortion(photo, contrast_first=True, **kwargs)
    last = photometric_distortion(photo, contrast_first=False, **kwargs)
    assert not np.array_equal(first, last)


def test_convert_clips_and_truncates():
    img = np.array([[[200, 10, 7]]], np.uint8)
    # 200 * 1.3 = 260 -> 255; 10 * 1.3 = 13; 7 * 1.53 = 10.71 -> 10 (truncated, not rounded).
    np.testing.assert_array_equal(photometric_distortion(img, contrast=1.3)[0, 0], [255, 13, 9])
    np.testing.assert_array_equal(photometric_distortion(img, contrast=1.53)[0, 0], [255, 15, 10])
    # 10 + 0.7 = 10.7 -> 10; 7 - 30 -> 0 (clipped below).
    np.testing.assert_array_equal(photometric_distortion(img, brightness=0.7)[0, 0], [200, 10, 7])
    np.testing.assert_array_equal(photometric_distortion(img, brightness=-30)[0, 0], [170, 0, 0])


def test_hue_wraps_around_mod_180():
    red = np.array([[[255, 0, 0]]], np.uint8)  # OpenCV hue 0
    assert cv2.cvtColor(red, cv2.COLOR_RGB2HSV)[0, 0, 0] == 0
    for shift, hue in [(-1, 179), (-18, 162), (17, 17)]:
        expected = cv2.cvtColor(np.array([[[hue, 255, 255]]], np.uint8), cv2.COLOR_HSV2RGB)
        np.testing.assert_array_equal(photometric_distortion(red, hue=shift), expected)
    magenta = cv2.cvtColor(np.array([[[175, 255, 255]]], np.uint8), cv2.COLOR_HSV2RGB)
    wrapped = cv2.cvtColor(np.array([[[(175 + 10) % 180, 255, 255]]], np.uint8), cv2.COLOR_HSV2RGB)
    np.testing.assert_array_equal(photometric_distortion(magenta, hue=10), wrapped)


def test_photometric_distortion_rejects_float_images():
    with pytest.raises(TypeError, match="uint8"):
        photometric_distortion(np.zeros((2, 2, 3), np.float32), brightness=1.0)


def test_pmd_transform_draws():
    tf = PhotoMetricDistortion()
    tf.set_random_seed(123)
    draws = [tf.get_params() for _ in range(4000)]
    applied = {k: [d[k] for d in draws if d[k] is not None] for k in
               ("brightness", "contrast", "saturation", "hue")}
    for key, values in applied.items():
        assert 0.45 < len(values) / len(draws) < 0.55, key  # each step with p = 0.5
    assert all(-32 <= b <= 32 for b in applied["brightness"])
    assert all(0.5 <= c <= 1.5 for c in applied["contrast"] + applied["saturation"])
    hues = applied["hue"]
    assert all(isinstance(h, int) for h in hues)
    assert set(hues) == set(range(-18, 18))  # numpy randint(-18, 18): 17 is the largest shift
    first = sum(d["contrast_first"] for d in draws) / len(draws)
    assert 0.45 < first < 0.55  # both contrast orders


def test_pmd_transform_is_seeded_and_applies_its_draws(photo):
    outs = []
    for seed in range(40):
        compose = A.Compose([PhotoMetricDistortion()], seed=seed, save_applied_params=True)
        out = compose(image=photo)
        (name, params), = out["applied_transforms"]
        assert name == "PhotoMetricDistortion"
        kwargs = {k: params[k] for k in
                  ("brightness", "contrast_first", "contrast", "saturation", "hue")}
        np.testing.assert_array_equal(out["image"], ref_pmd(photo, **kwargs))
        again = A.Compose([PhotoMetricDistortion()], seed=seed)(image=photo)["image"]
        np.testing.assert_array_equal(again, out["image"])
        outs.append(out["image"])
    assert len({o.tobytes() for o in outs}) > 30


# ------------------------------------------------------------------------------------------
# cat_max_ratio crop


class CountingRandom(random.Random):
    """random.Random that counts randint calls (the crop draws two per box)."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.calls = 0

    def randint(self, a: int, b: int) -> int:
        self.calls += 1
        return super().randint(a, b)


def coordinate_image(height: int, width: int) -> np.ndarray:
    """Pixel (y, x) holds (y, x, 0): a crop reveals its own offset."""
    yy, xx = np.mgrid[:height, :width]
    return np.stack([yy, xx, np.zeros_like(yy)], axis=-1).astype(np.uint8)


def run_crop(mask, crop, seed, ratio=0.75, suppressed=None):
    """Applies MMSegRandomCrop; returns (offset_h, offset_w, out_mask, randint calls)."""
    tf = MMSegRandomCrop(crop[0], crop[1], cat_max_ratio=ratio, suppressed_classes=suppressed)
    rng = CountingRandom(seed)
    tf.set_random_state(np.random.default_rng(seed), rng)
    out = tf(image=coordinate_image(*mask.shape), mask=mask)
    img = out["image"]
    assert img.shape[:2] == out["mask"].shape
    oh, ow = int(img[0, 0, 0]), int(img[0, 0, 1])
    np.testing.assert_array_equal(out["mask"], mask[oh : oh + crop[0], ow : ow + crop[1]])
    return oh, ow, out["mask"], rng.calls


def official_crop(mask, crop, seed, ratio, suppressed=None):
    """mmseg 0.20.2 RandomCrop with LoadAnnotations(suppress_labels) on an int64 map, replaying
    the same random.Random stream (two randint draws per box)."""
    seg = mask.astype(np.int64)
    for c in suppressed or ():
        seg[seg == c] = -1
    rng = random.Random(seed)
    height, width = seg.shape

    def draw():
        return rng.randint(0, max(height - crop[0], 0)), rng.randint(0, max(width - crop[1], 0))

    box = draw()
    if ratio < 1:
        for _ in range(10):
            tmp = seg[box[0] : box[0] + crop[0], box[1] : box[1] + crop[1]]
            labels, cnt = np.unique(tmp, return_counts=True)
            cnt = cnt[labels != 255]
            if len(cnt) > 1 and np.max(cnt) / np.sum(cnt) < ratio:
                break
            box = draw()
    return box


def eleventh_box(seed, shape, crop):
    rng = random.Random(seed)
    boxes = [
        (rng.randint(0, max(shape[0] - crop[0], 0)), rng.randint(0, max(shape[1] - crop[1], 0)))
        for _ in range(11)
    ]
    return boxes[-1]


def two_class_map() -> np.ndarray:
    """20×40, left half class 1, right half class 2. A 20×20 crop at column w holds 20-w
    columns of 1 and w of 2: it passes cat_max_ratio=0.75 only for w in 6..14."""
    mask = np.ones((20, 40), np.uint8)
    mask[:, 20:] = 2
    return mask


def three_class_map() -> np.ndarray:
    """10×30, columns 0-9 class 2, 10-19 class 3, 20-29 class 1."""
    mask = np.full((10, 30), 2, np.uint8)
    mask[:, 10:20] = 3
    mask[:, 20:] = 1
    return mask


def test_crop_rule_picks_a_passing_box():
    mask = two_class_map()
    passed = 0
    for seed in range(150):
        _, ow, out, calls = run_crop(mask, (20, 20), seed)
        ok = 6 <= ow <= 14
        assert ok or calls == 22  # a failing crop only after 10 failed checks (11 draws)
        if ok:  # the first passing box is kept: no draw after it
            assert calls % 2 == 0 and calls <= 22
        passed += ok
        assert set(np.unique(out)) <= {1, 2}
    assert passed >= 140  # a draw passes with p = 9/21; ten tries fail with p < 0.004
    # Without the rule: one box, the first draw, passing with p = 9/21 only.
    plain = [run_crop(mask, (20, 20), s, ratio=None) for s in range(150)]
    assert all(calls == 2 for *_, calls in plain)
    assert sum(6 <= ow <= 14 for _, ow, _, _ in plain) < 100


@pytest.mark.parametrize(
    ("mask_fn", "crop", "ratio", "suppressed"),
    [
        (two_class_map, (20, 20), 0.75, None),
        (two_class_map, (20, 20), 0.6, None),
        (two_class_map, (12, 20), 0.75, [2]),
        (three_class_map, (10, 10), 0.75, None),
        (three_class_map, (10, 10), 0.75, [2, 3]),
        (three_class_map, (8, 12), 0.9, [1]),
        (three_class_map, (10, 10), 1.0, None),
    ],
)
def test_crop_matches_official_replay(mask_fn, crop, ratio, suppressed):
    mask = mask_fn()
    for seed in range(60):
        oh, ow, _, _ = run_crop(mask, crop, seed, ratio=ratio, suppressed=suppressed)
        assert (oh, ow) == official_crop(mask, crop, seed, ratio, suppressed), seed


def test_crop_rule_annofree_uses_the_eleventh_draw():
    mask = three_class_map()
    mask[0, :5] = 255
    for seed in range(30):
        oh, ow, out, calls = run_crop(mask, (10, 10), seed, suppressed=[0, 1, 2, 3])
        assert calls == 22
        assert (oh, ow) == eleventh_box(seed, mask.shape, (10, 10))
        # The mask keeps the original class values; suppression only feeds the rule.
        assert set(np.unique(out)) <= {1, 2, 3, 255} and out.min() >= 1


def test_crop_rule_ignores_255():
    mask = two_class_map()
    mask[:, 20:] = 255  # class 1 and ignore only: never two categories
    for seed in range(30):
        oh, ow, _, calls = run_crop(mask, (20, 20), seed)
        assert calls == 22 and (oh, ow) == eleventh_box(seed, mask.shape, (20, 20))
    # A small ignored patch does not count towards the majority: 1 vs 2 split 10/10 passes.
    mask = two_class_map()
    mask[:, :5] = 255
    passed = [5 <= run_crop(mask, (20, 20), s)[1] <= 15 for s in range(60)]
    assert sum(passed) >= 55


def test_crop_rule_counts_suppressed_classes_as_one():
    mask = three_class_map()
    for seed in range(60):
        _, ow, out, calls = run_crop(mask, (10, 10), seed, suppressed=[2, 3])
        # Boxes inside columns 0-19 hold only the merged category {2, 3}: never accepted.
        # Unsuppressed, boxes at columns 3..7 (2 and 3) would pass.
        assert 13 <= ow <= 17 or calls == 22
        assert not (3 <= ow <= 7 and calls < 22)
        assert set(np.unique(out)) <= {1, 2, 3}  # original values, no -1


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_category_counts_match_unique(dtype):
    rng = np.random.default_rng(4)
    seg = rng.choice(np.array([0, 1, 4, 7, 255]), size=(30, 40)).astype(dtype)
    for suppressed in (None, [4], [1, 7, 9]):
        ref = seg.astype(np.int64)
        for c in suppressed or ():
            ref[ref == c] = -1
        labels, cnt = np.unique(ref, return_counts=True)
        expected = sorted(cnt[labels != 255].tolist())
        assert sorted(category_counts(seg, 255, suppressed).tolist()) == expected
    signed = np.array([[-1, -1, 3, 255]], np.int64)  # an already-suppressed map
    assert sorted(category_counts(signed, 255).tolist()) == [1, 2]


def test_crop_is_clipped_without_padding():
    mask = two_class_map()[:15, :12]
    tf = MMSegRandomCrop(20, 20, cat_max_ratio=0.75)
    tf.set_random_seed(0)
    out = tf(image=coordinate_image(15, 12), mask=mask)
    assert out["image"].shape == (15, 12, 3) and out["mask"].shape == (15, 12)
    np.testing.assert_array_equal(out["mask"], mask)


def test_crop_checks_its_arguments():
    with pytest.raises(ValueError, match="cat_max_ratio"):
        MMSegRandomCrop(8, 8, cat_max_ratio=1.5)
    with pytest.raises(ValueError, match="cat_max_ratio"):
        MMSegRandomCrop(8, 8, cat_max_ratio=0.0)


# ------------------------------------------------------------------------------------------
# Pipelines


def test_mmseg_pipeline_pads_bottom_right_after_normalisation():
    rng = np.random.default_rng(1)
    image = rng.integers(1, 255, (20, 28, 3), dtype=np.uint8)
    mask = rng.choice(np.array([0, 3, 5, 255], np.uint8), size=(20, 28))
    tf = build_train_transform(
        (28, 20), (32, 48), MEAN, STD, ratio_range=(1.0, 1.0), photometric="mmseg",
        cat_max_ratio=0.75,
    )
    names = [type(t).__name__ for t in tf.pipeline.transforms]
    assert names == ["RescaleToFit", "MMSegRandomCrop", "HorizontalFlip",
                     "PhotoMetricDistortion", "Normalize", "PadIfNeeded", "ToTensorV2"]
    tf.pipeline.set_random_seed(0)
    flips = set()
    for _ in range(12):
        out = tf(image=image, mask=mask)
        img, m = out["image"], out["mask"]
        assert img.shape == (3, 32, 48) and img.dtype == torch.float32
        assert m.shape == (32, 48) and m.dtype == torch.int64
        assert torch.all(img[:, 20:, :] == 0) and torch.all(img[:, :, 28:] == 0)
        assert torch.all(m[20:, :] == 255) and torch.all(m[:, 28:] == 255)
        inner = m[:20, :28].numpy()
        if np.array_equal(inner, mask):
            flips.add(False)
        else:
            np.testing.assert_array_equal(inner, mask[:, ::-1])
            flips.add(True)
        assert (img[:, :20, :28] != 0).float().mean() > 0.99
    assert flips == {False, True}


def test_mmseg_pipeline_without_ratio_is_one_plain_crop():
    tf = build_train_transform((64, 64), (16, 16), MEAN, STD, photometric="mmseg")
    crop = tf.pipeline.transforms[1]
    assert isinstance(crop, MMSegRandomCrop) and crop.cat_max_ratio is None
    rng = np.random.default_rng(2)
    out = tf(image=rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
             mask=np.zeros((64, 64), np.uint8))
    assert out["image"].shape == (3, 16, 16)


def old_default_pipeline(scale, crop_size, mean, std, ratio_range):
    """build_train_transform as it was before the switches were added."""
    crop_h, crop_w = crop_size
    return A.Compose(
        [
            RescaleToFit(scale=scale, ratio_range=ratio_range),
            A.RandomCrop(height=crop_h, width=crop_w, pad_if_needed=True,
                         pad_position="top_left", border_mode=cv2.BORDER_CONSTANT,
                         fill=tuple(255.0 * m for m in mean), fill_mask=255),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.1, p=0.5),
            A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
            ToTensorV2(),
        ]
    )


def test_default_pipeline_is_unchanged():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = rng.choice(np.array([0, 3, 5, 255], np.uint8), size=(40, 56))
    new = build_train_transform((56, 40), (48, 64), MEAN, STD, ratio_range=(0.5, 2.0))
    old = old_default_pipeline((56, 40), (48, 64), MEAN, STD, (0.5, 2.0))
    assert repr(new.pipeline) == repr(old)
    for seed in (0, 7):
        new.pipeline.set_random_seed(seed)
        old.set_random_seed(seed)
        for _ in range(6):
            a = new(image=image, mask=mask)
            b = old(image=image, mask=mask)
            assert torch.equal(a["image"], b["image"])
            assert torch.equal(a["mask"], torch.as_tensor(b["mask"]).long())


def test_jitter_with_cat_max_ratio_pads_in_the_crop_step():
    tf = build_train_transform((28, 20), (32, 48), MEAN, STD, ratio_range=(1.0, 1.0),
                               cat_max_ratio=0.75)
    names = [type(t).__name__ for t in tf.pipeline.transforms]
    assert names == ["RescaleToFit", "MMSegRandomCrop", "PadIfNeeded", "HorizontalFlip",
                     "ColorJitter", "Normalize", "ToTensorV2"]
    out = tf(image=np.full((20, 28, 3), 100, np.uint8), mask=np.ones((20, 28), np.uint8))
    assert out["image"].shape == (3, 32, 48) and (out["mask"] == 255).sum() == 32 * 48 - 20 * 28


def test_photometric_none_changes_geometry_only():
    # Same seed, same crop and flip: 'none' must equal 'jitter' minus the colour change, so the
    # output is the flipped-or-not input itself, normalised (the world's classes are colours).
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (16, 16), dtype=np.uint8)
    tf = build_train_transform((16, 16), (16, 16), MEAN, STD, ratio_range=(1.0, 1.0),
                               photometric="none")
    names = [type(t).__name__ for t in tf.pipeline.transforms]
    assert "ColorJitter" not in names and "HorizontalFlip" in names
    mean, std = np.array(MEAN) * 255, np.array(STD) * 255
    for _ in range(6):
        out = tf(image=image, mask=mask)
        flipped = bool((out["mask"].numpy() != mask).any())
        source = image[:, ::-1] if flipped else image
        expected = (source - mean) / std
        assert np.allclose(out["image"].numpy().transpose(1, 2, 0), expected, atol=1e-4)


def test_build_train_transform_checks_switches():
    with pytest.raises(ValueError, match="photometric must be 'jitter', 'mmseg' or 'none'"):
        build_train_transform((8, 8), (8, 8), MEAN, STD, photometric="color")
    with pytest.raises(ValueError, match=r"cat_max_ratio must be in \(0, 1\]"):
        build_train_transform((8, 8), (8, 8), MEAN, STD, cat_max_ratio=2)


# ------------------------------------------------------------------------------------------
# DataModule and configs


def world_dm(**kwargs) -> SegDataModule:
    args = {
        "dataset": "world", "root": "unused", "vocabulary": "world", "num_classes": 12,
        "dataset_kwargs": {"image_size": 96, "num_images": 4}, "train_split": "train",
        "test_split": "test", "test_scale": (96, 96), "crop_size": (80, 72), "batch_size": 2,
        "num_workers": 0,
    }
    return SegDataModule(**(args | kwargs))


def test_datamodule_official_augment_on_world():
    dm = world_dm(photometric="mmseg", cat_max_ratio=0.75)
    assert dm.hparams.photometric == "mmseg" and dm.hparams.cat_max_ratio == 0.75
    dm.setup("fit")
    crop = dm.train_set.transform.pipeline.transforms[1]
    assert isinstance(crop, MMSegRandomCrop) and crop.suppressed_classes is None
    dm.set_suppressed_classes(range(12))  # annotation-free: every class
    crop = dm.train_set.transform.pipeline.transforms[1]
    assert crop.suppressed_classes == tuple(range(12)) and crop.cat_max_ratio == 0.75
    for i in range(len(dm.train_set)):
        sample = dm.train_set[i]
        assert sample["image"].shape == (3, 80, 72) and sample["mask"].shape == (80, 72)
        assert set(sample["mask"].unique().tolist()) <= set(range(12)) | {255}
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 80, 72) and batch["mask"].shape == (2, 80, 72)
    dm.set_suppressed_classes([3, 1, 3])
    assert dm.train_set.transform.pipeline.transforms[1].suppressed_classes == (1, 3)
    dm.set_suppressed_classes(None)
    assert dm.train_set.transform.pipeline.transforms[1].suppressed_classes is None
    with pytest.raises(ValueError, match="Suppressed classes"):
        dm.set_suppressed_classes([-1])


def test_datamodule_rejects_bad_switches():
    with pytest.raises(ValueError, match="data.photometric must be 'jitter', 'mmseg' or 'none'"):
        world_dm(photometric="colour")
    for bad in (0, 0.0, -0.5, 1.01, "0.75", True):
        with pytest.raises(ValueError, match=r"data.cat_max_ratio must be in \(0, 1\]"):
            world_dm(cat_max_ratio=bad)
    assert world_dm(cat_max_ratio=1).cat_max_ratio == 1.0


def test_every_data_config_has_the_switches_with_todays_defaults():
    configs = sorted(CONF_DIR.glob("*.yaml"))
    assert len(configs) >= 10
    for path in configs:
        cfg = OmegaConf.load(path)
        assert cfg.cat_max_ratio is None and cfg.photometric == "jitter", path.name


def test_world_config_instantiates_with_official_switches(tmp_path: Path):
    cfg = OmegaConf.create(
        {"paths": {"data_dir": str(tmp_path)}, "data": OmegaConf.load(CONF_DIR / "world.yaml")}
    )
    cfg.data.photometric = "mmseg"
    cfg.data.cat_max_ratio = 0.75
    cfg.data.dataset_kwargs.num_images = 2
    dm = instantiate(cfg.data)
    assert dm.photometric == "mmseg" and dm.cat_max_ratio == 0.75
    dm.setup("fit")
    dm.set_suppressed_classes([0, 5])
    sample = dm.train_set[0]
    assert sample["image"].shape == (3, 96, 96) and sample["mask"].shape == (96, 96)
