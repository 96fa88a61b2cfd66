"""Tests for the raw-dataset converters in ``scripts/`` (tiny synthetic fixtures, CPU, offline)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import convert_coco_stuff, convert_pascal_context, convert_sbd  # noqa: E402

OLD_MTIME_NS = 1_000_000_000 * 10**9  # 2001-09-09


def _png(path: Path, arr: np.ndarray, palette: list[int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(arr, dtype=np.uint8))
    if palette is not None:
        img.putpalette(palette)
    img.save(path)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img)


def _mtimes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


def _age(paths: list[Path]) -> None:
    for p in paths:
        os.utime(p, ns=(OLD_MTIME_NS, OLD_MTIME_NS))


def _no_temp_files(root: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in root.rglob("*"))


# =========================================================================== COCO-Stuff


def test_coco_stuff_lut_table():
    lut = convert_coco_stuff.RAW_TO_TRAIN_ID
    assert convert_coco_stuff.NUM_CLASSES == 171
    # things: raw 0..89 minus the unused ids, stuff: raw 91..181
    assert lut[0] == 0 and lut[10] == 10 and lut[12] == 11  # 11 (street sign) skipped
    assert lut[89] == 79  # toothbrush, last thing
    assert lut[91] == 80 and lut[181] == 170  # banner first stuff, wood last stuff
    for raw in (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90, 182, 200, 254, 255):
        assert lut[raw] == 255
    used = sorted(set(lut[lut != 255].tolist()))
    assert used == list(range(171))


@pytest.fixture
def coco_raw(tmp_path: Path) -> Path:
    root = tmp_path / "stuffthingmaps_trainval2017"
    _png(root / "train2017" / "000000000009.png", [[0, 91, 181, 255], [11, 90, 12, 1]])
    _png(root / "train2017" / "000000000025.png", [[24, 26, 66, 69]])
    _png(root / "val2017" / "000000000139.png", [[44, 45, 83, 255]])
    return root


def test_coco_stuff_convert(coco_raw: Path, tmp_path: Path):
    out = tmp_path / "coco_stuff164k"
    assert convert_coco_stuff.main(["--stuff-root", str(coco_raw), "--out-root", str(out)]) == 0
    ann = out / "annotations"
    np.testing.assert_array_equal(
        _read(ann / "train2017" / "000000000009_labelTrainIds.png"),
        [[0, 80, 170, 255], [255, 255, 11, 1]],
    )
    np.testing.assert_array_equal(
        _read(ann / "train2017" / "000000000025_labelTrainIds.png"), [[23, 24, 60, 61]]
    )
    np.testing.assert_array_equal(
        _read(ann / "val2017" / "000000000139_labelTrainIds.png"), [[255, 40, 73, 255]]
    )
    assert sorted(p.name for p in (ann / "train2017").iterdir()) == [
        "000000000009_labelTrainIds.png",
        "000000000025_labelTrainIds.png",
    ]
    assert _no_temp_files(out)


def test_coco_stuff_resume_overwrite_nproc(coco_raw: Path, tmp_path: Path):
    out = tmp_path / "out"
    argv = ["--stuff-root", str(coco_raw), "--out-root", str(out)]
    convert_coco_stuff.main(argv + ["--nproc", "2"])
    files = sorted((out / "annotations").rglob("*.png"))
    assert len(files) == 3
    _age(files)
    before = _mtimes(files)
    convert_coco_stuff.main(argv)  # resume: nothing rewritten
    assert _mtimes(files) == before
    convert_coco_stuff.main(argv + ["--overwrite"])
    assert all(p.stat().st_mtime_ns != before[p] for p in files)


def test_coco_stuff_images_symlink(coco_raw: Path, tmp_path: Path):
    images = tmp_path / "coco" / "images"
    for split in ("train2017", "val2017"):
        (images / split).mkdir(parents=True)
        (images / split / "x.jpg").write_bytes(b"jpg")
    out = tmp_path / "out"
    argv = ["--stuff-root", str(coco_raw), "--out-root", str(out), "--images-root", str(images)]
    convert_coco_stuff.main(argv)
    convert_coco_stuff.main(argv)  # existing links are kept
    for split in ("train2017", "val2017"):
        link = out / "images" / split
        assert link.is_symlink() and (link / "x.jpg").read_bytes() == b"jpg"


def test_coco_stuff_missing_input(tmp_path: Path):
    with pytest.raises(SystemExit) as e:
        convert_coco_stuff.main(
            ["--stuff-root", str(tmp_path / "nope"), "--out-root", str(tmp_path / "o")]
        )
    msg = str(e.value)
    assert str(tmp_path / "nope") in msg and "train2017" in msg
    (tmp_path / "raw" / "train2017").mkdir(parents=True)
    with pytest.raises(SystemExit) as e:
        convert_coco_stuff.main(
            ["--stuff-root", str(tmp_path / "raw"), "--out-root", str(tmp_path / "o")]
        )
    assert str(tmp_path / "raw" / "val2017") in str(e.value)


# =========================================================================== SBD


def _gtcls_mat(path: Path, seg: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    seg = np.asarray(seg, dtype=np.uint8)
    scipy.io.savemat(
        path,
        {
            "GTcls": {
                "Segmentation": seg,
                "Boundaries": np.zeros((21, 1), dtype=object),
                "CategoriesPresent": np.unique(seg[seg > 0]).astype(np.uint8),
            }
        },
    )


def _write_ids(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


@pytest.fixture
def sbd_raw(tmp_path: Path) -> tuple[Path, Path]:
    sbd = tmp_path / "benchmark_RELEASE"
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    # SBD: a (train), b (train), c (val), v1 (val; but also a VOC val image), t1 (VOC train)
    _gtcls_mat(sbd / "dataset" / "cls" / "a.mat", [[0, 1, 2], [20, 0, 15]])
    _gtcls_mat(sbd / "dataset" / "cls" / "b.mat", [[3, 3, 3], [4, 4, 4]])
    _gtcls_mat(sbd / "dataset" / "cls" / "c.mat", [[5]])
    _gtcls_mat(sbd / "dataset" / "cls" / "v1.mat", [[6, 6]])
    _gtcls_mat(sbd / "dataset" / "cls" / "t1.mat", [[9, 9]])
    _write_ids(sbd / "dataset" / "train.txt", ["a", "b", "t1"])
    _write_ids(sbd / "dataset" / "val.txt", ["c", "v1"])
    # VOC: t1, t2 train; v1, v2 val (palette PNGs with 255 boundaries)
    pal = convert_sbd.VOC_PALETTE
    seg = voc / "SegmentationClass"
    _png(seg / "t1.png", [[0, 255, 7], [7, 7, 255]], pal)
    _png(seg / "t2.png", [[12, 12], [0, 255]], pal)
    _png(seg / "v1.png", [[1, 255]], pal)
    _png(seg / "v2.png", [[2, 2]], pal)
    _write_ids(voc / "ImageSets" / "Segmentation" / "train.txt", ["t1", "t2"])
    _write_ids(voc / "ImageSets" / "Segmentation" / "val.txt", ["v1", "v2"])
    return voc, sbd


def test_voc_palette():
    pal = convert_sbd.VOC_PALETTE
    assert len(pal) == 768
    assert pal[0:3] == [0, 0, 0] and pal[3:6] == [128, 0, 0] and pal[6:9] == [0, 128, 0]
    assert pal[15 * 3 : 16 * 3] == [192, 128, 128]  # person
    assert pal[255 * 3 :] == [224, 224, 192]  # void


def test_sbd_convert(sbd_raw: tuple[Path, Path]):
    voc, sbd = sbd_raw
    assert convert_sbd.main(["--voc-root", str(voc), "--sbd-root", str(sbd)]) == 0
    out = voc / "SegmentationClassAug"
    assert sorted(p.stem for p in out.glob("*.png")) == ["a", "b", "c", "t1", "t2", "v1", "v2"]
    expected = {
        "a": [[0, 1, 2], [20, 0, 15]],  # SBD values preserved
        "b": [[3, 3, 3], [4, 4, 4]],
        "c": [[5]],
        "t1": [[0, 255, 7], [7, 7, 255]],  # VOC's own label wins over SBD's
        "t2": [[12, 12], [0, 255]],
        "v1": [[1, 255]],
        "v2": [[2, 2]],
    }
    for stem, arr in expected.items():
        with Image.open(out / f"{stem}.png") as img:
            assert img.mode == "P"
            assert img.getpalette()[:63] == convert_sbd.VOC_PALETTE[:63]
            np.testing.assert_array_equal(np.array(img), arr)
    # (VOC train | SBD train | SBD val) - VOC val
    aug = (voc / "ImageSets" / "Segmentation" / "aug.txt").read_text().split()
    assert aug == ["a", "b", "c", "t1", "t2"]
    assert _no_temp_files(voc)


def test_sbd_accepts_dataset_dir_and_resumes(sbd_raw: tuple[Path, Path]):
    voc, sbd = sbd_raw
    argv = ["--voc-root", str(voc), "--sbd-root", str(sbd / "dataset")]
    convert_sbd.main(argv)
    files = sorted((voc / "SegmentationClassAug").glob("*.png"))
    files.append(voc / "ImageSets" / "Segmentation" / "aug.txt")
    _age(files)
    before = _mtimes(files)
    convert_sbd.main(argv + ["--nproc", "2"])
    assert _mtimes(files) == before


def test_sbd_missing_inputs(sbd_raw: tuple[Path, Path], tmp_path: Path):
    voc, sbd = sbd_raw
    with pytest.raises(SystemExit) as e:
        convert_sbd.main(["--voc-root", str(voc), "--sbd-root", str(tmp_path / "missing")])
    assert str(tmp_path / "missing") in str(e.value) and "cls" in str(e.value)
    (sbd / "dataset" / "val.txt").unlink()
    with pytest.raises(SystemExit) as e:
        convert_sbd.main(["--voc-root", str(voc), "--sbd-root", str(sbd)])
    assert str(sbd / "dataset" / "val.txt") in str(e.value)


def test_sbd_aug_id_without_label_is_an_error(sbd_raw: tuple[Path, Path]):
    voc, sbd = sbd_raw
    _write_ids(sbd / "dataset" / "train.txt", ["a", "b", "t1", "ghost"])
    with pytest.raises(SystemExit) as e:
        convert_sbd.main(["--voc-root", str(voc), "--sbd-root", str(sbd)])
    assert "ghost" in str(e.value)


# =========================================================================== PASCAL-Context


def _encode_rle_string(counts: list[int]) -> str:
    """Test-side compressed COCO RLE encoder (inverse of the documented decoding)."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _mask_to_counts(mask: np.ndarray) -> list[int]:
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    counts, cur, run = [], False, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return counts


def test_rle_decoding_hand_examples():
    dec = convert_pascal_context.rle_string_to_counts
    assert dec("324") == [3, 2, 4]
    assert dec("1114") == [1, 1, 1, 5]  # 4th value is a delta to the 2nd
    assert dec("050M") == [0, 5, 0, 2]  # 'M' = -3
    assert dec("T3") == [100]  # two 5-bit groups
    m = convert_pascal_context.decode_rle({"size": [2, 3], "counts": [1, 2, 3]})
    # column-major: (0,0)=0, (1,0)=1, (0,1)=1, (1,1)..(1,2)=0
    np.testing.assert_array_equal(m, [[0, 1, 0], [1, 0, 0]])
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((7, 9)) < 0.4
        rle = {"size": [7, 9], "counts": _encode_rle_string(_mask_to_counts(mask))}
        np.testing.assert_array_equal(convert_pascal_context.decode_rle(rle), mask)


def _box(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


@pytest.fixture
def context_detail(tmp_path: Path) -> tuple[Path, Path]:
    voc = tmp_path / "VOCdevkit" / "VOC2010"
    voc.mkdir(parents=True)
    h, w = 4, 5

    def rle(m: np.ndarray, compressed: bool = True) -> dict:
        counts = _mask_to_counts(m)
        return {"size": [h, w], "counts": _encode_rle_string(counts) if compressed else counts}

    data = {
        "info": {},
        "images": [
            {"image_id": 2008000002, "file_name": "2008_000002.jpg", "height": h, "width": w,
             "phase": "train"},
            {"image_id": 2008000003, "file_name": "2008_000003.jpg", "height": h, "width": w,
             "phase": "val"},
            {"image_id": 2008000001, "file_name": "2008_000001.jpg", "height": h, "width": w,
             "phase": "train"},
            {"image_id": 2011000001, "file_name": "2011_000001.jpg", "height": h, "width": w,
             "phase": "test"},
        ],
        "annos_segmentation": [
            # image 2: aeroplane (2) everywhere in rows 0-1, person (284) over cols 3-4 (wins)
            {"id": 1, "image_id": 2008000002, "category_id": 2, "iscrowd": 0,
             "segmentation": rle(_box(h, w, 0, 2, 0, 5))},
            {"id": 2, "image_id": 2008000002, "category_id": 284, "iscrowd": 0,
             "segmentation": rle(_box(h, w, 0, 4, 3, 5), compressed=False)},
            # image 3: wood (458), tvmonitor (427) and accordion (1, not one of the 59)
            {"id": 3, "image_id": 2008000003, "category_id": 458, "iscrowd": 0,
             "segmentation": rle(_box(h, w, 3, 4, 0, 5))},
            {"id": 4, "image_id": 2008000003, "category_id": 427, "iscrowd": 0,
             "segmentation": rle(_box(h, w, 0, 1, 0, 1))},
            {"id": 5, "image_id": 2008000003, "category_id": 1, "iscrowd": 0,
             "segmentation": rle(_box(h, w, 1, 2, 1, 2))},
        ],
        "categories": [
            {"category_id": 2, "name": "aeroplane"},
            {"category_id": 284, "name": "person"},
        ],
    }  # fmt: skip
    ann = voc / "trainval_merged.json"
    ann.write_text(json.dumps(data))
    return voc, ann


def test_context_mapping_table():
    lut = convert_pascal_context.build_lut()
    assert lut[0] == 0 and lut[2] == 1 and lut[9] == 2  # background, aeroplane, bag
    assert lut[284] == 37 and lut[427] == 55 and lut[458] == 59  # person, tvmonitor, wood
    assert lut[1] == 0 and lut[3] == 0 and lut[459] == 0  # other 459-class ids -> background
    assert sorted(set(lut.tolist())) == list(range(60))


def test_context_detail_convert(context_detail: tuple[Path, Path]):
    voc, ann = context_detail
    assert convert_pascal_context.main(["--voc-root", str(voc), "--annotation", str(ann)]) == 0
    out = voc / "SegmentationClassContext"
    assert sorted(p.name for p in out.iterdir()) == [
        "2008_000001.png",
        "2008_000002.png",
        "2008_000003.png",
    ]
    np.testing.assert_array_equal(
        _read(out / "2008_000002.png"),
        [[1, 1, 1, 37, 37], [1, 1, 1, 37, 37], [0, 0, 0, 37, 37], [0, 0, 0, 37, 37]],
    )
    np.testing.assert_array_equal(
        _read(out / "2008_000003.png"),
        [[55, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [59, 59, 59, 59, 59]],
    )
    np.testing.assert_array_equal(_read(out / "2008_000001.png"), np.zeros((4, 5)))
    sets = voc / "ImageSets" / "SegmentationContext"
    assert (sets / "train.txt").read_text().split() == ["2008_000001", "2008_000002"]
    assert (sets / "val.txt").read_text().split() == ["2008_000003"]
    assert _no_temp_files(voc)


def test_context_detail_resume(context_detail: tuple[Path, Path]):
    voc, ann = context_detail
    argv = ["--voc-root", str(voc), "--annotation", str(voc), "--format", "detail"]
    convert_pascal_context.main(argv + ["--nproc", "2"])
    files = sorted((voc / "SegmentationClassContext").glob("*.png"))
    files += sorted((voc / "ImageSets" / "SegmentationContext").glob("*.txt"))
    assert len(files) == 5
    _age(files)
    before = _mtimes(files)
    convert_pascal_context.main(argv)
    assert _mtimes(files) == before
    convert_pascal_context.main(argv + ["--overwrite"])
    pngs = [p for p in files if p.suffix == ".png"]
    assert all(p.stat().st_mtime_ns != before[p] for p in pngs)


@pytest.fixture
def context_mat(tmp_path: Path) -> tuple[Path, Path]:
    voc = tmp_path / "VOCdevkit" / "VOC2010"
    raw = tmp_path / "context_raw"
    (raw / "trainval").mkdir(parents=True)
    scipy.io.savemat(
        raw / "trainval" / "2008_000002.mat",
        {"LabelMap": np.array([[0, 2, 3], [284, 458, 459]], dtype=np.uint16)},
    )
    scipy.io.savemat(
        raw / "trainval" / "2008_000003.mat",
        {"LabelMap": np.array([[427, 427], [1, 360]], dtype=np.uint16)},
    )
    _write_ids(voc / "ImageSets" / "Main" / "train.txt", ["2008_000002"])
    _write_ids(voc / "ImageSets" / "Main" / "val.txt", ["2008_000003", "2008_000099"])
    return voc, raw


def test_context_mat_convert_builtin_ids(context_mat: tuple[Path, Path]):
    voc, raw = context_mat
    assert convert_pascal_context.main(["--voc-root", str(voc), "--annotation", str(raw)]) == 0
    out = voc / "SegmentationClassContext"
    np.testing.assert_array_equal(_read(out / "2008_000002.png"), [[0, 1, 0], [37, 59, 0]])
    np.testing.assert_array_equal(_read(out / "2008_000003.png"), [[55, 55], [0, 47]])
    sets = voc / "ImageSets" / "SegmentationContext"
    assert (sets / "train.txt").read_text().split() == ["2008_000002"]
    assert (sets / "val.txt").read_text().split() == ["2008_000003"]  # no .mat for 000099


def test_context_mat_labels_txt_by_name(context_mat: tuple[Path, Path]):
    voc, raw = context_mat
    # A labels.txt whose ids are shifted for two classes: the names decide.
    lines = [f"{cid}: {name}" for name, cid in convert_pascal_context.CONTEXT59]
    lines = [ln for ln in lines if not ln.endswith((": person", ": wood"))]
    lines += ["1: accordion", "3: airconditioner", "459: person"]
    labels = raw / "labels.txt"
    labels.write_text("\n".join(lines) + "\n")
    assert convert_pascal_context.main(
        ["--voc-root", str(voc), "--annotation", str(raw / "trainval"), "--format", "mat"]
    ) == 0
    out = voc / "SegmentationClassContext"
    # 459 is now person (37); 284 is unnamed -> 0; wood missing from labels.txt -> built-in 458
    np.testing.assert_array_equal(_read(out / "2008_000002.png"), [[0, 1, 0], [0, 59, 37]])
    np.testing.assert_array_equal(_read(out / "2008_000003.png"), [[55, 55], [0, 47]])


def test_context_missing_inputs(context_mat: tuple[Path, Path], tmp_path: Path):
    voc, raw = context_mat
    with pytest.raises(SystemExit) as e:
        convert_pascal_context.main(
            ["--voc-root", str(voc), "--annotation", str(tmp_path / "trainval_merged.json")]
        )
    assert str(tmp_path / "trainval_merged.json") in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        convert_pascal_context.main(["--voc-root", str(voc), "--annotation", str(empty)])
    assert "LabelMap" in str(e.value) and str(empty) in str(e.value)
    (voc / "ImageSets" / "Main" / "val.txt").unlink()
    with pytest.raises(SystemExit) as e:
        convert_pascal_context.main(["--voc-root", str(voc), "--annotation", str(raw)])
    assert str(voc / "ImageSets" / "Main" / "val.txt") in str(e.value)


def test_context_bad_json(tmp_path: Path):
    voc = tmp_path / "VOC2010"
    voc.mkdir()
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(SystemExit) as e:
        convert_pascal_context.main(["--voc-root", str(voc), "--annotation", str(bad)])
    assert "annos_segmentation" in str(e.value)
