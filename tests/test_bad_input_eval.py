"""src.eval with bad input: it fails before any work, names the field, and leaves no results."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.utils.config import require_writable_dir
from tests.test_eval import compose_eval

WORLD = ["experiment=world_maskclip", "+data.dataset_kwargs.num_images=4", "logger=csv",
         "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "num_overlays=0"]


def test_impossible_output_dir_fails_before_any_work(tmp_path):
    from src.eval import evaluate

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = compose_eval([*WORLD, f"paths.output_dir={blocker / 'run'}"])
    with pytest.raises(PermissionError, match=r"paths.output_dir=.*a_file/run.*cannot be"):
        evaluate(cfg)


def test_writable_dir_check_leaves_no_probe(tmp_path):
    out = require_writable_dir(tmp_path / "new" / "run")
    assert out.is_dir() and list(out.iterdir()) == []


def test_results_are_written_whole(tmp_path):
    from src.eval import evaluate

    cfg = compose_eval([*WORLD, f"paths.output_dir={tmp_path}"])
    results = evaluate(cfg)
    written = (tmp_path / "results.json").read_text()
    assert f'"mIoU": {results["summary"]["mIoU"]}' in written
    assert not list(Path(tmp_path).rglob(".*.tmp"))  # no temp file left behind
    csv_files = list(Path(tmp_path).rglob("per_class_iou.csv"))
    assert csv_files and csv_files[0].read_text().count("\n") == 1 + 12  # header + 12 classes


def test_a_corrupt_image_stops_evaluation_and_leaves_no_result_files(tmp_path):
    """Skipping the file would silently change mIoU: src.eval stops, names it, writes nothing."""
    from src.data.datasets import UnreadableImageError
    from tests.fixtures import write_folder_fixture
    from src.eval import evaluate

    root = write_folder_fixture(tmp_path / "custom", n=3, size=(40, 56))
    bad = sorted((root / "images").iterdir())[1]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated
    out = tmp_path / "run"
    cfg = compose_eval(["data=folder", f"data.root={root}", "teacher=tiny", "prompts=single",
                        "data.num_workers=0", "logger=csv", "trainer.accelerator=cpu",
                        "trainer.enable_progress_bar=false", "num_overlays=0",
                        f"paths.output_dir={out}"])
    with pytest.raises(UnreadableImageError, match=bad.name):
        evaluate(cfg)
    assert not list(out.rglob("results.json")) and not list(out.rglob("per_class_iou.csv"))
