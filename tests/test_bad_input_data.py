"""Bad input data: every failure names its file (and line) and the fix; nothing is silently wrong.

Fixtures are written in the real formats (JPEG/PNG via PIL, split lists, classes.txt) under
tmp_path; each test calls what a user's command calls (dataset, datamodule, load_vocabulary,
src.label's ``label``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.datamodule import SegDataModule
from src.data.datasets import EmptySplitError, FolderDataset, VOCDataset
from tests.fixtures import write_folder_fixture, write_voc_fixture
from src.data.images import ImageListDataset, UnreadableImageError, read_rgb
from src.prompts.vocabulary import load_vocabulary, split_class_list
from src.utils.config import PROJECT_ROOT

CLASSES = ["red", "green", "blue"]


def _truncate(path: Path) -> None:
    """Keep the first half of a valid image file, as an interrupted download does."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _folder(tmp_path: Path, n: int = 4, size=(24, 32)) -> Path:
    return write_folder_fixture(tmp_path / "f", CLASSES, n=n, size=size)


def _datamodule(root: Path, **kwargs) -> SegDataModule:
    dm = SegDataModule(dataset="folder", root=str(root), vocabulary=str(root / "classes.txt"),
                       test_scale=(64, 64), crop_size=(16, 16), num_workers=0, **kwargs)
    dm.set_normalization((0.5,) * 3, (0.25,) * 3)
    return dm


# --------------------------------------------------------------------------- 1. image reader


def test_16bit_png_through_a_dataset_equals_read_rgb_not_white(tmp_path):
    """A 16-bit PNG read by data=folder (eval, src.label data=...) is scaled as src.predict does."""
    root = _folder(tmp_path, n=2)
    (root / "images" / "img_000.jpg").unlink()
    ramp = np.linspace(0, 60000, 24 * 32).reshape(24, 32).astype(np.uint16)
    deep = Image.fromarray(ramp)
    assert deep.mode.startswith("I;16")
    path = root / "images" / "img_000.png"
    deep.save(path)

    ds = FolderDataset(root)
    expected = read_rgb(path)
    image = ds.load_image(0)
    assert np.array_equal(image, expected)
    assert not (image == 255).all() and image.max() > 200 and image.min() == 0
    assert torch.equal(ds[0]["image"], torch.from_numpy(expected).permute(2, 0, 1).float())
    # The label export reads through the dataset too.
    item = ImageListDataset.from_dataset(ds, None, (0.5,) * 3, (0.25,) * 3)[0]
    assert np.array_equal(item["rgb"], expected)


def test_other_image_modes_and_formats_read_like_predict(tmp_path):
    """CMYK JPEG, LA, palette and 1-bit PNGs and a TIFF read as RGB, none silently left out."""
    root = _folder(tmp_path, n=5)
    images = root / "images"
    rgb = np.asarray(Image.open(images / "img_000.jpg").convert("RGB"))
    odd = {
        "img_000.jpg": Image.fromarray(rgb).convert("CMYK"),
        "img_001.png": Image.open(images / "img_001.jpg").convert("LA"),
        "img_002.png": Image.open(images / "img_002.jpg").convert("P"),
        "img_003.png": Image.open(images / "img_003.jpg").convert("1"),
        "img_004.tif": Image.open(images / "img_004.jpg").convert("RGB"),
    }
    for name, im in odd.items():
        (images / f"{Path(name).stem}.jpg").unlink()
        im.save(images / name)
    (images / "._img_000.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    ds = FolderDataset(root)
    assert ds.names == [f"img_{i:03d}" for i in range(5)]  # the .tif counts, the ._ file not
    for index, (image_path, _, _) in enumerate(ds.samples):
        image = ds.load_image(index)
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert np.array_equal(image, read_rgb(image_path))
        assert ds[index]["mask"].shape == image.shape[:2]


def test_image_and_mask_of_different_size_name_both_and_the_fix(tmp_path):
    root = _folder(tmp_path, n=2)
    path = root / "images" / "img_000.jpg"
    Image.open(path).transpose(Image.Transpose.ROTATE_90).save(path)
    with pytest.raises(ValueError) as info:
        FolderDataset(root, split="train")[0]
    message = str(info.value)
    print(message)
    assert str(path) in message and str(root / "masks" / "img_000.png") in message
    assert "rotated by 90°" in message and "'img_000'" in message
    assert str(root / "splits" / "train.txt") in message


# --------------------------------------------------------------------------- 2. class lists


def test_empty_line_in_a_class_file_is_an_error_naming_file_and_line(tmp_path):
    root = _folder(tmp_path, n=2)
    classes = root / "classes.txt"
    classes.write_text("# my classes\nred\n\ngreen\nblue\n", encoding="utf-8")
    for read in (load_vocabulary, lambda p: FolderDataset(p.parent)):
        with pytest.raises(ValueError, match=rf"{classes}:3: line 3 is empty") as info:
            read(classes)
    print(info.value)
    # Comments anywhere and blank lines after the last class shift nothing: both are fine.
    classes.write_text("# my classes\nred\n# the middle one\ngreen\r\nblue\n\n  \n", "utf-8")
    assert load_vocabulary(classes).names == ("red", "green", "blue")
    assert FolderDataset(root).num_classes == 3
    # An empty synonym is an empty entry too.
    classes.write_text("red\ngreen: green,, lime\nblue\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{classes}:2: empty prompt name or synonym"):
        load_vocabulary(classes)


def test_class_file_encodings_utf8_utf16_ok_latin1_names_line(tmp_path):
    names = ("café", "straße", "naïve")
    text = "".join(f"{n}\n" for n in names)
    for label, data in (("utf8", text.encode()), ("utf8bom", b"\xef\xbb\xbf" + text.encode()),
                        ("utf16le", text.encode("utf-16")),  # with BOM, native (LE) order
                        ("utf16be", b"\xfe\xff" + text.encode("utf-16-be"))):
        path = tmp_path / f"{label}.txt"
        path.write_bytes(data)
        assert load_vocabulary(path).names == names, label
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("cat\ncafé\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{latin1}:2: line 2 is not valid UTF-8") as info:
        load_vocabulary(latin1)
    print(info.value)
    assert "Save the file as UTF-8" in str(info.value)
    nobom = tmp_path / "utf16_no_bom.txt"
    nobom.write_bytes("cat\ndog\n".encode("utf-16-le"))
    with pytest.raises(ValueError, match=rf"{nobom}:1: .*without a byte-order mark"):
        load_vocabulary(nobom)
    # The same reader serves split lists.
    root = write_voc_fixture(tmp_path / "voc")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_bytes(
        "2007_000002\n2007_000003 é\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"val.txt:2: line 2 is not valid UTF-8"):
        VOCDataset(root, split="val")


def test_duplicate_class_name_names_both_lines(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("sofa: sofa\ncat\nsofa: couch\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:3: class 'sofa' on line 3 is already listed "
                                         r"on line 1") as info:
        load_vocabulary(path)
    print(info.value)


def test_comma_class_list_with_an_empty_entry_is_an_error(tmp_path):
    assert split_class_list("cat, dog ,red car") == ["cat", "dog", "red car"]
    for value, entry, count in (("cat,,dog", 2, 3), ("cat,dog,", 3, 3), (",cat", 1, 2)):
        with pytest.raises(ValueError, match=rf"classes={value}: entry {entry} of {count} is "
                                             "empty"):
            split_class_list(value)
    with pytest.raises(ValueError, match=r"class 'cat' is listed more than once \(entries 1 "
                                         r"and 3\)"):
        split_class_list("cat,dog,cat")
    with pytest.raises(ValueError, match=r"classes=: entry 2 of 3 is empty") as info:
        load_vocabulary(["cat", " ", "dog"], source="classes=")
    print(info.value)


# --------------------------------------------------------------------------- 3. unreadable files


def test_truncated_image_in_an_eval_split_names_file_and_split_list(tmp_path):
    root = write_voc_fixture(tmp_path)
    bad = root / "JPEGImages" / "2007_000003.jpg"
    _truncate(bad)
    split_list = root / "ImageSets" / "Segmentation" / "val.txt"
    ds = VOCDataset(root, split="val")
    ds[0]  # the other image is fine
    with pytest.raises(UnreadableImageError) as info:
        ds[1]
    message = str(info.value)
    print(message)
    assert info.value.path == bad and isinstance(info.value, OSError)
    assert f"Unreadable image file {bad}" in message and "truncated" in message
    assert f"remove its id '2007_000003' from the split list {split_list}" in message
    # Evaluation stops with it, also through a DataLoader worker process.
    dm = SegDataModule(dataset="voc", root=str(root), vocabulary="voc20", num_classes=20,
                       test_split="val", test_scale=(64, 64), num_workers=1)
    dm.set_normalization((0.5,) * 3, (0.25,) * 3)
    dm.setup("test")
    batches = iter(dm.test_dataloader())
    try:
        with pytest.raises(UnreadableImageError, match=rf"Unreadable image file {bad}"):
            list(batches)
    finally:
        batches._shutdown_workers()  # now, not seconds later when the traceback is collected


def test_unreadable_mask_names_the_mask(tmp_path):
    root = _folder(tmp_path, n=2)
    mask = root / "masks" / "img_001.png"
    mask.write_bytes(b"not a png at all")
    with pytest.raises(UnreadableImageError) as info:
        FolderDataset(root)[1]
    print(info.value)
    assert info.value.path == mask
    assert f"Unreadable mask file {mask}" in str(info.value)
    assert "(every file in" in str(info.value)  # no split list: the folder is the split


def test_training_stops_on_unreadable_unless_skip_unreadable(tmp_path, caplog):
    root = _folder(tmp_path, n=4)
    bad = root / "images" / "img_001.jpg"
    _truncate(bad)

    strict = _datamodule(root, batch_size=2)
    strict.setup("fit")
    with pytest.raises(UnreadableImageError, match=rf"Unreadable image file {bad}"):
        for _, batch in zip(range(2), strict.train_dataloader()):  # 2 × 2 = one full epoch
            pass

    def stream(start_step: int, steps: int) -> list[dict]:
        dm = _datamodule(root, batch_size=2, skip_unreadable=True)
        dm.setup("fit")
        dm.load_state_dict({"global_step": start_step})
        batches = []
        with caplog.at_level(logging.WARNING, logger="src.data.datamodule"):
            for _, batch in zip(range(steps), dm.train_dataloader()):
                batches.append(dm.on_before_batch_transfer(batch, 0))  # as Lightning does
        return batches, dm

    caplog.clear()
    full, dm = stream(0, 6)
    assert "img_001" not in [name for b in full for name in b["name"]]
    assert all("skipped" not in b for b in full)
    assert list(dm.skipped_files) == [str(bad)] and dm.num_skipped_files == 1
    assert dm.skipped_files[str(bad)] == 3  # once per epoch of 4 samples, 3 epochs
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and str(bad) in warnings[0]
    # Deterministic: a run resumed at step 3 sees what the uninterrupted run saw.
    resumed, _ = stream(3, 3)
    for a, b in zip(full[3:], resumed):
        assert a["name"] == b["name"] and torch.equal(a["image"], b["image"])
        assert torch.equal(a["mask"], b["mask"])


def test_fit_counts_skipped_files_through_lightning(tmp_path):
    """Lightning calls the datamodule's hook: the count reaches the main process."""
    import lightning as L

    root = _folder(tmp_path, n=4)
    bad = root / "masks" / "img_002.png"
    _truncate(bad)

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.keys: set[str] = set()

        def training_step(self, batch, batch_idx):
            self.keys |= set(batch)
            self.log("train/skipped_files", float(self.trainer.datamodule.num_skipped_files))
            return (self.weight * batch["image"].mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = _datamodule(root, batch_size=2, skip_unreadable=True)
    module = Tiny()
    trainer = L.Trainer(accelerator="cpu", max_steps=4, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=dm)
    assert dm.skipped_files == {str(bad): 2}
    assert "skipped" not in module.keys and {"image", "mask"} <= module.keys


def test_label_export_of_a_dataset_skips_and_reports_the_unreadable_file(tmp_path):
    """`python -m src.label data=folder ...`: a truncated image is a reported skip, by path."""
    from src.label import label
    from src.utils.experiments import compose_config

    root = _folder(tmp_path, n=3)
    bad = root / "images" / "img_001.jpg"
    _truncate(bad)
    out = tmp_path / "labels"
    cfg = compose_config("label", [
        "data=folder", f"data.root={root}", f"out={out}", "teacher=tiny", "prompts=single",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "num_workers=0",
        "batch_size=1"])
    report = label(cfg)
    assert report["num_images"] == 2 and report["num_skipped"] == 1
    skipped = report["skipped"][0]
    print(skipped)
    assert skipped["image"] == str(bad) and f"Unreadable image file {bad}" in skipped["error"]
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == ["img_000", "img_002"]


# --------------------------------------------------------------------------- 4. empty splits


def test_empty_split_list_or_folder_names_it(tmp_path):
    voc = write_voc_fixture(tmp_path / "voc")
    split_list = voc / "ImageSets" / "Segmentation" / "val.txt"
    split_list.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"the split list {split_list} holds no image id") as i:
        VOCDataset(voc, split="val")
    print(i.value)
    assert isinstance(i.value, EmptySplitError)
    dm = SegDataModule(dataset="voc", root=str(voc), vocabulary="voc20", num_classes=20,
                       test_split="val", num_workers=0)
    with pytest.raises(EmptySplitError, match=str(split_list)):
        dm.setup("test")
    # An id listed twice would count the image twice.
    split_list.write_text("2007_000002\n2007_000003\n2007_000002\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{split_list}:3: id '2007_000002' on line 3 is "
                                         r"already listed on line 1"):
        VOCDataset(voc, split="val")

    root = _folder(tmp_path, n=2)
    (root / "splits" / "val.txt").write_text("", encoding="utf-8")
    with pytest.raises(EmptySplitError, match=rf"the split list {root / 'splits' / 'val.txt'}"):
        FolderDataset(root, split="val")
    for image in (root / "images").iterdir():
        image.rename(root / image.name)  # images moved one level up by mistake
    (root / "images" / "notes.txt").write_text("not an image", encoding="utf-8")
    with pytest.raises(EmptySplitError, match=rf"the image folder {root / 'images'} holds no "
                                              r"image file \(\.jpg") as info:
        FolderDataset(root)
    print(info.value)


def test_every_data_config_has_skip_unreadable_off():
    from omegaconf import OmegaConf

    configs = sorted((PROJECT_ROOT / "conf" / "data").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = OmegaConf.load(path)
        assert cfg.skip_unreadable is False, path
        assert "cat_max_ratio" in cfg and "photometric" in cfg, path


def test_read_rgb_names_a_truncated_png_and_the_fix(tmp_path):
    """read_rgb's own message (src.predict, src.label images=...) names the file and the fix."""
    path = tmp_path / "half.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)).save(path)
    _truncate(path)
    with pytest.raises(UnreadableImageError, match=rf"cannot read image {path}: .*truncated") as i:
        read_rgb(path)
    print(i.value)
    assert i.value.path == path


def test_predict_and_label_class_lists_keep_every_entry():
    """`src.predict`/`src.label classes=cat,,dog`: an error, never a silently shorter list."""
    from src.predict import class_list_argv, load_classes

    with pytest.raises(ValueError, match="entry 2 of 3 is empty"):
        class_list_argv(["classes=cat,,dog"])
    with pytest.raises(ValueError, match="empty"):
        load_classes("cat,,dog")
    with pytest.raises(ValueError, match="empty"):
        load_classes(["cat", " ", "dog"])
    assert load_classes("cat,dog").names == ("cat", "dog")
