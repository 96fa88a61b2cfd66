"""Tests of src.data: layouts, label maps, transforms, splits, vocabularies, datamodule, configs."""

from __future__ import annotations

import shutil
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from src.data.datamodule import SegDataModule, list_collate
from src.data.datasets import (
    DATASETS,
    COCOStuffDataset,
    FolderDataset,
    PascalContextDataset,
    SegmentationDataset,
    VOCDataset,
)
from tests.fixtures import (
    write_ade20k_fixture,
    write_cityscapes_fixture,
    write_coco_object_fixture,
    write_cocostuff_fixture,
    write_context_fixture,
    write_folder_fixture,
    write_voc_fixture,
)
from src.data.splits import ZERO_SHOT_UNSEEN, unseen_indices
from src.data.transforms import (
    NORMALIZATION,
    RescaleToFit,
    build_eval_transform,
    build_train_transform,
    rescale_size,
)

REPO = Path(__file__).resolve().parents[1]
VOCAB_DIR = REPO / "src" / "prompts" / "vocab"
CONF_DIR = REPO / "conf" / "data"
CLIP_MEAN, CLIP_STD = NORMALIZATION["clip"]
SMALL_SCALE = (128, 64)  # keeps the tests fast; the real scales are checked on rescale_size


def dataset_names(vocab: str) -> list[str]:
    """The dataset names (text before ':') of a vocabulary file, in class-index order."""
    lines = (VOCAB_DIR / f"{vocab}.txt").read_text(encoding="utf-8").splitlines()
    return [line.split(":")[0].strip() for line in lines if line.strip()]


def prompt_names(vocab: str) -> list[str]:
    lines = (VOCAB_DIR / f"{vocab}.txt").read_text(encoding="utf-8").splitlines()
    return [line.split(":")[-1].split(",")[0].strip() for line in lines if line.strip()]


def raw_png(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_voc_fixture(root)
    write_context_fixture(root)
    write_cocostuff_fixture(root)
    write_folder_fixture(root / "custom", ["red", "green", "blue: blue, navy"], n=4)
    return root


@pytest.fixture(scope="module")
def voc_root(data_dir: Path) -> Path:
    return data_dir / "VOCdevkit" / "VOC2012"


def eval_tf(scale=SMALL_SCALE):
    return build_eval_transform(scale, CLIP_MEAN, CLIP_STD)


# ------------------------------------------------------------------------------------------
# Transforms


@pytest.mark.parametrize(
    ("hw", "scale", "expected"),
    [
        ((375, 500), (2048, 512), (512, 683)),  # VOC: short side -> 512
        ((500, 375), (2048, 512), (683, 512)),
        ((1000, 3000), (2048, 512), (512, 1536)),  # short side binds, downscale
        ((200, 3000), (2048, 512), (137, 2048)),  # long side binds: 200 * 2048/3000 = 136.5
        ((375, 500), (520, 520), (390, 520)),  # Context: long side -> 520 (enlarges)
        ((1000, 800), (520, 520), (520, 416)),
    ],
)
def test_rescale_size_matches_mmseg(hw, scale, expected):
    assert rescale_size(*hw, scale) == expected


def test_rescale_to_fit_transform_resizes_image_and_mask():
    image = np.zeros((375, 500, 3), np.uint8)
    mask = np.zeros((375, 500), np.uint8)
    mask[:, 250:] = 7
    out = A.Compose([RescaleToFit(scale=(2048, 512))])(image=image, mask=mask)
    assert out["image"].shape == (512, 683, 3)
    assert out["mask"].shape == (512, 683)
    assert set(np.unique(out["mask"])) == {0, 7}  # nearest: no blended labels


def test_eval_transform_normalises_image_and_keeps_mask():
    image = np.full((375, 500, 3), 128, np.uint8)
    mask = np.random.default_rng(0).integers(0, 21, (375, 500)).astype(np.uint8)
    out = build_eval_transform((2048, 512), CLIP_MEAN, CLIP_STD)(image=image, mask=mask)
    assert out["image"].shape == (3, 512, 683) and out["image"].dtype == torch.float32
    expected = (128 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(out["image"].mean(dim=(1, 2)), expected, atol=1e-4, rtol=0)
    assert out["mask"].dtype == torch.int64
    assert torch.equal(out["mask"], torch.from_numpy(mask).long())


def test_train_transform_crops_pads_and_keeps_labels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = rng.choice(np.array([0, 3, 5, 255], np.uint8), size=(40, 56))
    tf = build_train_transform((56, 40), (48, 64), CLIP_MEAN, CLIP_STD, ratio_range=(0.5, 2.0))
    tf.pipeline.set_random_seed(0)
    saw_padding = False
    for _ in range(8):
        out = tf(image=image, mask=mask)
        assert out["image"].shape == (3, 48, 64) and out["image"].dtype == torch.float32
        assert out["mask"].shape == (48, 64) and out["mask"].dtype == torch.int64
        assert set(out["mask"].unique().tolist()) <= {0, 3, 5, 255}
        saw_padding |= bool((out["mask"][-1] == 255).all())
    assert saw_padding  # ratio 0.5 gives a 20×28 image, padded with 255 up to the 48×64 crop


# ------------------------------------------------------------------------------------------
# Datasets


def test_voc20_label_map_against_raw_png(voc_root: Path):
    ds = VOCDataset(voc_root, split="val", transform=eval_tf())
    assert len(ds) == 2 and ds.num_classes == 20
    for index in range(len(ds)):
        sample = ds[index]
        raw = torch.from_numpy(raw_png(ds.samples[index][1])).long()
        assert Image.open(ds.samples[index][1]).mode == "P"
        expected = torch.where((raw == 0) | (raw == 255), 255, raw - 1)
        assert sample["mask"].dtype == torch.int64
        assert torch.equal(sample["mask"], expected)  # original resolution, mapped labels
        assert sample["orig_size"] == tuple(raw.shape)
        assert sample["image"].shape[1:] == rescale_size(*raw.shape, SMALL_SCALE)
        assert sample["name"] == ds.samples[index][2]
    # The fixture has both orientations, so the eval images differ in size.
    assert ds[0]["orig_size"] == (40, 56) and ds[1]["orig_size"] == (56, 40)


def test_voc21_keeps_background(voc_root: Path):
    ds = VOCDataset(voc_root, split="val", with_background=True)
    raw = torch.from_numpy(raw_png(ds.samples[0][1])).long()
    sample = ds[0]
    assert ds.num_classes == 21 and torch.equal(sample["mask"], raw)
    assert (raw == 0).any() and (raw == 255).any()  # background and VOC void outlines
    assert sample["image"].shape == (3, 40, 56)  # no transform: original-size 0..255 image


def test_voc_aug_uses_sbd_masks_with_fallback(voc_root: Path):
    ds = VOCDataset(voc_root, split="aug")
    assert ds.names == ["2007_000000", "2007_000001", "2008_100000", "2008_100001"]
    folders = [mask.parent.name for _, mask, _ in ds.samples]
    assert folders == ["SegmentationClass"] + ["SegmentationClassAug"] * 3
    for index in range(len(ds)):
        assert set(ds[index]["mask"].unique().tolist()) <= set(range(20)) | {255}


@pytest.mark.parametrize("num_classes", [59, 60])
def test_context_layout(data_dir: Path, num_classes: int):
    root = data_dir / "VOCdevkit" / "VOC2010"
    ds = PascalContextDataset(
        root, split="val", num_classes=num_classes, transform=eval_tf((520, 520))
    )
    sample = ds[0]
    raw = torch.from_numpy(raw_png(ds.samples[0][1])).long()
    expected = torch.where(raw == 0, 255, raw - 1) if num_classes == 59 else raw
    assert torch.equal(sample["mask"], expected)
    assert max(sample["image"].shape[1:]) == 520  # Context: long side 520
    assert len(PascalContextDataset(root, split="train", num_classes=num_classes)) == 2


def test_cocostuff_layout(data_dir: Path):
    ds = COCOStuffDataset(data_dir / "coco_stuff164k", split="val2017", transform=eval_tf())
    assert ds.num_classes == 171 and ds.names == ["000000000003", "000000000004"]
    sample = ds[0]
    raw = torch.from_numpy(raw_png(ds.samples[0][1])).long()
    assert torch.equal(sample["mask"], raw) and (raw == 255).any()
    assert sample["image"].shape[1:] == rescale_size(*raw.shape, SMALL_SCALE)


@pytest.mark.parametrize(
    ("cls", "layout_line", "hint"),
    [
        (VOCDataset, "SegmentationClassAug/<id>.png", "scripts/convert_sbd.py"),
        (PascalContextDataset, "SegmentationClassContext/<id>.png", "convert_pascal_context.py"),
        (COCOStuffDataset, "_labelTrainIds.png", "scripts/convert_coco_stuff.py"),
        (FolderDataset, "classes.txt", "data.root="),
    ],
)
def test_wrong_root_shows_layout(tmp_path: Path, cls, layout_line: str, hint: str):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        cls(missing)
    message = str(info.value)
    assert str(missing) in message and "Expected layout" in message
    assert layout_line in message and hint in message and "data.root" in message


def test_root_one_level_too_high_is_pointed_out(data_dir: Path):
    with pytest.raises(FileNotFoundError, match="VOCdevkit/VOC2012; use that as data.root"):
        VOCDataset(data_dir)


def test_missing_split_list_and_missing_image(tmp_path: Path):
    root = write_voc_fixture(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"split list for split 'test'.*test\.txt"):
        VOCDataset(root, split="test")
    (root / "JPEGImages" / "2007_000003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="2007_000003.jpg"):
        VOCDataset(root, split="val")


def test_out_of_range_mask_value_names_the_file(tmp_path: Path):
    root = write_voc_fixture(tmp_path)
    bad = root / "SegmentationClass" / "2007_000002.png"
    label_map = raw_png(bad)
    label_map[0, :3] = 30  # VOC has 1..20 (+ 0, 255)
    im = Image.fromarray(label_map)
    im.putpalette(Image.open(bad).getpalette())
    im.save(bad)
    ds = VOCDataset(root, split="val")
    with pytest.raises(ValueError) as info:
        ds[0]
    message = str(info.value)
    assert str(bad) in message and "[29]" in message and "0..19" in message
    assert "reduce_zero_label" in message
    with pytest.raises(ValueError, match=r"\[30\].*0\.\.20"):
        VOCDataset(root, split="val", with_background=True)[0]
    ds[1]  # the other image is fine


def test_rgb_mask_is_rejected(tmp_path: Path):
    root = write_folder_fixture(tmp_path / "f", ["a", "b"], n=2)
    mask_path = root / "masks" / "img_000.png"
    Image.open(mask_path).convert("RGB").save(mask_path)
    with pytest.raises(ValueError, match="single-channel"):
        FolderDataset(root)[0]


def test_folder_dataset_with_masks_and_splits(data_dir: Path):
    root = data_dir / "custom"
    ds = FolderDataset(root, transform=eval_tf())
    assert len(ds) == 4 and ds.num_classes == 3 and ds.has_masks
    sample = ds[0]
    assert sample["name"] == "img_000" and sample["orig_size"] == (40, 56)
    assert set(sample["mask"].unique().tolist()) <= {0, 1, 2, 255}
    assert (sample["mask"][-1] == 255).all()
    assert FolderDataset(root, split="val").names == ["img_002", "img_003"]
    # Class-correlated content: "red" pixels are red, "blue" pixels blue.
    image = np.array(Image.open(ds.samples[0][0])).astype(float)
    mask = raw_png(ds.samples[0][1])
    for label, channel in ((0, 0), (2, 2)):
        if (mask == label).any():
            assert image[mask == label].mean(0).argmax() == channel


def test_folder_dataset_without_masks(tmp_path: Path):
    root = write_folder_fixture(tmp_path / "f", ["cat", "dog"], n=3, with_masks=False)
    with open(root / "classes.txt", "a", encoding="utf-8") as f:
        f.write("\n# comment lines and blank lines are not classes\n\n")
    ds = FolderDataset(root, transform=eval_tf())
    assert not ds.has_masks and ds.num_classes == 2
    sample = ds[2]
    assert "mask" not in sample and sample["image"].ndim == 3 and sample["name"] == "img_002"
    batch = list_collate([ds[0], ds[1]])
    assert "mask" not in batch and batch["orig_size"] == [(40, 56), (56, 40)]


def test_folder_split_naming_missing_image(tmp_path: Path):
    root = write_folder_fixture(tmp_path / "f", ["a", "b"], n=2)
    (root / "splits" / "extra.txt").write_text("img_000\nghost\n")
    with pytest.raises(FileNotFoundError, match="ghost"):
        FolderDataset(root, split="extra")
    shutil.rmtree(root / "masks")
    (root / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match="img_000.png"):
        FolderDataset(root)


# ------------------------------------------------------------------------------------------
# Registry: the conf/data configs and the registered datasets agree

DATA_CONFIGS = sorted(path.stem for path in CONF_DIR.glob("*.yaml"))


@pytest.fixture(scope="module")
def every_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``paths.data_dir`` with a tiny fixture at the root of every ``conf/data`` config."""
    root = tmp_path_factory.mktemp("layouts")
    write_voc_fixture(root)
    write_context_fixture(root)
    write_cocostuff_fixture(root)
    write_coco_object_fixture(root)
    write_cityscapes_fixture(root)
    write_ade20k_fixture(root)
    write_folder_fixture(root / "custom")
    return root  # the world needs no files: its scenes are generated


@pytest.mark.parametrize("config", DATA_CONFIGS)
def test_every_data_config_builds_its_registered_dataset(every_layout: Path, config: str):
    data = OmegaConf.load(CONF_DIR / f"{config}.yaml")
    assert data.dataset in DATASETS, f"conf/data/{config}.yaml: {data.dataset!r} not registered"
    cls = DATASETS.resolve(data.dataset)
    assert issubclass(cls, SegmentationDataset)
    cfg = OmegaConf.create({"paths": {"data_dir": str(every_layout)}, "data": data})
    cfg.data.num_workers = 0
    dm = instantiate(cfg.data)
    dm.setup("test")
    assert type(dm.test_set) is cls and len(dm.test_set) >= 1
    assert dm.test_set.num_classes == dm.num_classes
    sample = dm.test_set[0]
    # Evaluation samples: a 3×h×w image and an int64 mask at the original H×W, labels 0..C-1|255.
    assert sample["image"].ndim == 3 and sample["image"].shape[0] == 3
    assert sample["mask"].dtype == torch.int64
    assert tuple(sample["mask"].shape) == tuple(sample["orig_size"])
    labels = sample["mask"].unique()
    assert ((labels < dm.num_classes) | (labels == 255)).all()


def test_every_registered_dataset_has_a_data_config():
    # A registered dataset no config selects is unreachable without a command-line override.
    used = {OmegaConf.load(CONF_DIR / f"{config}.yaml").dataset for config in DATA_CONFIGS}
    assert set(DATASETS) - used == set()


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown dataset 'ade'") as err:
        DATASETS.resolve("ade")
    assert all(repr(name) in str(err.value) for name in DATASETS)
    assert "ade" not in DATASETS
    with pytest.raises(KeyError):
        DATASETS["ade"]  # the mapping itself behaves as a dict


# ------------------------------------------------------------------------------------------
# Vocabularies and splits


@pytest.mark.parametrize(
    ("vocab", "count"),
    [("voc20", 20), ("voc21", 21), ("context59", 59), ("context60", 60), ("cocostuff", 171)],
)
def test_vocab_line_counts(vocab: str, count: int):
    names = dataset_names(vocab)
    assert len(names) == count and len(set(names)) == count


def test_vocab_renamings_and_orders():
    voc = dict(zip(dataset_names("voc20"), prompt_names("voc20")))
    assert voc["aeroplane"] == "airplane" and voc["diningtable"] == "dining table"
    assert voc["pottedplant"] == "potted plant" and voc["tvmonitor"] == "tv monitor"
    assert voc["sheep"] == "sheep"
    assert dataset_names("voc21") == ["background"] + dataset_names("voc20")
    assert dataset_names("context60") == ["background"] + dataset_names("context59")
    ctx = dict(zip(dataset_names("context59"), prompt_names("context59")))
    assert ctx["aeroplane"] == "airplane" and ctx["tvmonitor"] == "tv monitor"
    assert dataset_names("context59")[:4] == ["aeroplane", "bag", "bed", "bedclothes"]
    coco_names = dataset_names("cocostuff")
    coco = dict(zip(coco_names, prompt_names("cocostuff")))
    assert coco_names[0] == "person" and coco_names[79] == "toothbrush"  # 80 things first
    assert coco_names[80] == "banner" and coco_names[-1] == "wood"
    for name, prompt in {
        "building-other": "building", "ceiling-tile": "tile ceiling", "wall-brick": "brick wall",
        "wall-concrete": "concrete wall", "window-blind": "blind window", "sky-other": "sky",
        "desk-stuff": "desk", "tv": "tv", "hair drier": "hair drier",
    }.items():
        assert coco[name] == prompt
    assert not any("-" in prompt for prompt in coco.values())


@pytest.mark.parametrize(
    ("vocab", "expected"),
    [
        ("voc20", [15, 16, 17, 18, 19]),
        ("voc21", [16, 17, 18, 19, 20]),
        ("context60", [1, 7, 8, 15, 20, 25, 32, 34, 49, 55]),
        ("cocostuff", [19, 23, 28, 29, 36, 51, 76, 88, 94, 112, 133, 136, 137, 157, 160]),
    ],
)
def test_unseen_indices(vocab: str, expected: list[int]):
    assert unseen_indices(vocab, dataset_names(vocab)) == expected
    assert len(ZERO_SHOT_UNSEEN[vocab]) == len(expected)


def test_unseen_indices_errors():
    with pytest.raises(ValueError, match="tvmonitor"):
        unseen_indices("voc20", ["aeroplane", "pottedplant", "sheep", "sofa", "train"])
    with pytest.raises(ValueError, match="Unknown zero-shot split"):
        unseen_indices("ade150", [])


# ------------------------------------------------------------------------------------------
# DataModule and configs


def make_dm(voc_root: Path, **kwargs) -> SegDataModule:
    args = dict(
        dataset="voc", root=str(voc_root), vocabulary="voc20", num_classes=20,
        train_split="aug", test_split="val", test_scale=SMALL_SCALE, crop_size=(32, 48),
        batch_size=2, num_workers=0,
    )
    return SegDataModule(**(args | kwargs))


def test_datamodule_list_collated_eval_batch(voc_root: Path):
    dm = make_dm(voc_root)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) == {"image", "mask", "name", "orig_size"}
    assert batch["name"] == ["2007_000002", "2007_000003"]
    assert batch["orig_size"] == [(40, 56), (56, 40)]
    assert [tuple(m.shape) for m in batch["mask"]] == batch["orig_size"]
    assert [tuple(i.shape[1:]) for i in batch["image"]] == [(64, 90), (90, 64)]
    assert dm.ignore_index == 255
    dm.setup("predict")
    assert next(iter(dm.predict_dataloader()))["name"] == batch["name"]


def test_datamodule_train_batch_is_stacked(voc_root: Path):
    dm = make_dm(voc_root)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 48) and batch["mask"].shape == (2, 32, 48)
    assert batch["mask"].dtype == torch.int64
    assert set(batch["mask"].unique().tolist()) <= set(range(20)) | {255}
    assert len(next(iter(dm.val_dataloader()))["image"]) == 2


def test_datamodule_normalization_resolution(voc_root: Path):
    dm = make_dm(voc_root)
    assert dm.normalization == NORMALIZATION["clip"]  # fallback without injection
    dm.setup("test")
    dm.set_normalization([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    assert dm.normalization == ((0.5,) * 3, (0.5,) * 3)
    # The already built dataset picks the injected values up: 128 -> ~0.
    image = np.full((40, 56, 3), 128, np.uint8)
    out = dm.test_set.transform(image=image)
    assert out["image"].abs().max() < 0.01
    assert make_dm(voc_root, normalize="imagenet").normalization == NORMALIZATION["imagenet"]
    explicit = make_dm(voc_root, normalize="imagenet", mean=[0.1] * 3, std=[0.2] * 3)
    assert explicit.normalization == ((0.1,) * 3, (0.2,) * 3)
    with pytest.raises(RuntimeError, match="normalisation is unresolved"):
        make_dm(voc_root, normalize=None).setup("test")
    with pytest.raises(ValueError, match="Unknown normalize"):
        make_dm(voc_root, normalize="siglip")


def test_datamodule_checks(voc_root: Path):
    with pytest.raises(ValueError, match="with_background"):
        make_dm(voc_root, num_classes=21).setup("test")
    with pytest.raises(ValueError, match="Unknown dataset"):
        make_dm(voc_root, dataset="ade")
    with pytest.raises(ValueError, match="zero_shot_split"):
        make_dm(voc_root, zero_shot_split="ade")
    with pytest.raises(RuntimeError, match="setup"):
        make_dm(voc_root).test_dataloader()


@pytest.mark.parametrize(
    ("name", "num_classes", "scale"),
    [
        ("voc20", 20, (2048, 512)),
        ("voc21", 21, (2048, 512)),
        ("context59", 59, (520, 520)),
        ("context60", 60, (520, 520)),
        ("cocostuff", 171, (2048, 512)),
        ("folder", 3, (2048, 512)),
    ],
)
def test_hydra_configs_instantiate(data_dir: Path, name: str, num_classes: int, scale):
    cfg = OmegaConf.create(
        {"paths": {"data_dir": str(data_dir)}, "data": OmegaConf.load(CONF_DIR / f"{name}.yaml")}
    )
    assert cfg.data.zero_shot_split is None
    cfg.data.num_workers = 0
    dm = instantiate(cfg.data)
    assert isinstance(dm, SegDataModule) and dm.test_scale == scale
    dm.setup("test")
    assert dm.num_classes == num_classes == dm.test_set.num_classes
    if name == "folder":
        assert dm.vocabulary == str(data_dir / "custom" / "classes.txt")
    else:
        assert dm.vocabulary == name
    assert len(dm.test_set) >= 2
