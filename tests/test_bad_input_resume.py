"""Resume continues only the SAME job: src.predict / src.label into an ``out=`` that holds another
job's outputs are refused (naming what differs), overwrite=true starts fresh.

Real runs of the offline world teacher (no download) on a few tiny generated images.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures import write_folder_fixture
from src.utils.config import PROJECT_ROOT
from src.utils.experiments import compose_config
from src.utils.jobs import JobMismatchError, code_version

CPU = ["trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "num_workers=0"]
WORLD = ["teacher=world", "prompts=world", "scale=null", *CPU]
CLASSES = "classes=grass,sky,water,sand,road"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Three small generated RGB images."""
    root = tmp_path_factory.mktemp("inputs")
    return write_folder_fixture(root, n=3, size=(40, 56), with_masks=False) / "images"


def _run(task: str, overrides: list[str], **kwargs):
    """As ``python -m src.<task> ...`` (comma class lists rewritten before Hydra)."""
    from src.label import label
    from src.predict import class_list_argv, predict

    cfg = compose_config(task, class_list_argv([*overrides, *WORLD]))
    return predict(cfg) if task == "predict" else label(cfg, **kwargs)


def _files(out: Path) -> dict[str, int]:
    """Every file under ``out`` with its modification time."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


@pytest.fixture
def no_model(monkeypatch):
    """A refused run must fail before any model is built or any image is read."""
    import src.builders
    import src.data.images

    def fail(*args, **kwargs):
        raise AssertionError("a model was built or an image read before the job check")

    monkeypatch.setattr(src.builders, "build_teacher", fail)
    monkeypatch.setattr(src.data.images.ImageListDataset, "__getitem__", fail)


def test_same_job_resumes_and_rewrites_nothing(tmp_path, images, caplog):
    out = tmp_path / "out"
    first = _run("predict", [f"images={images}", CLASSES, f"out={out}"])
    assert first["num_images"] == 3
    job = json.loads((out / "job.json").read_text())
    assert job["task"] == "predict" and job["classes"] == ["grass", "sky", "water", "sand", "road"]
    assert job["model"] == {"kind": "teacher", "model_name": "world-vit", "model_config": None}
    assert job["weights"]["file"].endswith("world-vit.safetensors") and job["weights"]["size"]
    before = _files(out)
    with caplog.at_level(logging.INFO, logger="src"):
        again = _run("predict", [f"images={images}", CLASSES, f"out={out}"])
    assert "3 of 3 images already done" in caplog.text
    assert again["images"] == first["images"]
    assert _files(out) == before  # nothing rewritten: labels, overlays, records, reports, job.json


@pytest.mark.parametrize("task", ["predict", "label"])
def test_other_classes_are_refused_naming_classes(tmp_path, images, task, request):
    out = tmp_path / "out"
    _run(task, [f"images={images}", CLASSES, f"out={out}"])
    before = _files(out)
    request.getfixturevalue("no_model")
    with pytest.raises(JobMismatchError) as err:
        _run(task, [f"images={images}", "classes=grass,sky", f"out={out}"])
    message = str(err.value)
    assert ('classes: ["grass", "sky", "water", "sand", "road"] → ["grass", "sky"]' in message)
    assert "queries:" in message and "refine" not in message and "weights" not in message
    assert "out=" in message and "overwrite=true" in message
    assert _files(out) == before  # refused before anything was written


def test_other_refinement_is_refused_naming_refine(tmp_path, images, request):
    out = tmp_path / "out"
    _seed_job(out, images)  # refine=none
    request.getfixturevalue("no_model")
    with pytest.raises(JobMismatchError) as err:
        _run("label", [f"images={images}", CLASSES, f"out={out}", "refine=ks"])
    lines = [line.strip() for line in str(err.value).splitlines()]
    assert "refine.key_smoothing: false → true" in lines
    assert not any(line.startswith("classes") for line in lines)


def _seed_job(out: Path, images: Path) -> dict:
    """A real src.label job with ``CLASSES`` in ``out``; returns its job.json."""
    _run("label", [f"images={images}", CLASSES, f"out={out}"])
    return json.loads((out / "job.json").read_text())


def test_new_code_version_alone_resumes_and_says_so(tmp_path, images, caplog):
    out = tmp_path / "out"
    job = _seed_job(out, images)
    job["code_version"] = "0.0.1+git.old"
    del job["inference"]["align"]  # an option that older code did not have yet
    (out / "job.json").write_text(json.dumps(job))
    masks = {p: p.stat().st_mtime_ns for p in (out / "masks").glob("*.png")}
    with caplog.at_level(logging.INFO, logger="src"):
        report = _run("label", [f"images={images}", CLASSES, f"out={out}"])
    assert f"resuming a job written by code version 0.0.1+git.old with {code_version()}" \
        in caplog.text
    assert "does not record inference.align; assuming they are unchanged" in caplog.text
    assert report["num_images"] == 3
    assert {p: p.stat().st_mtime_ns for p in masks} == masks  # resumed, not relabelled
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["code_version"] == "0.0.1+git.old"
    assert manifest["resumed_with_code_version"] == code_version()
    assert json.loads((out / "job.json").read_text())["code_version"] == "0.0.1+git.old"


def test_overwrite_starts_fresh_and_masks_follow_the_new_classes(tmp_path, images):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    _seed_job(out, images)
    (out / "notes.txt").write_text("mine")  # not ours: kept
    (out / "images" / "extra.txt").write_text("mine")
    new = [f"images={images}", "classes=sky,grass"]
    report = _run("label", [*new, f"out={out}", "overwrite=true"])
    assert report["num_images"] == 3 and report["settings"]["classes"] == ["sky", "grass"]
    _run("label", [*new, f"out={fresh}"])
    assert (out / "classes.txt").read_text() == (fresh / "classes.txt").read_text()
    assert json.loads((out / "job.json").read_text())["classes"] == ["sky", "grass"]
    masks = sorted(p.name for p in (out / "masks").glob("*.png"))
    assert masks == sorted(p.name for p in (fresh / "masks").glob("*.png")) and len(masks) == 3
    for name in masks:
        with Image.open(out / "masks" / name) as a, Image.open(fresh / "masks" / name) as b:
            labels = np.asarray(a)
            assert np.array_equal(labels, np.asarray(b))
        assert set(np.unique(labels).tolist()) <= {0, 1}
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "images" / "extra.txt").read_text() == "mine"
    # The same job again resumes the overwritten one.
    assert _run("label", [*new, f"out={out}"])["num_images"] == 3


def test_outputs_without_identity_are_refused(tmp_path, images, no_model):
    # Someone's dataset (images/ + masks/, nothing of ours): refused, even with overwrite=true.
    data = tmp_path / "dataset"
    for folder in ("images", "masks"):
        (data / folder).mkdir(parents=True)
        Image.new("L", (8, 8), 1).save(data / folder / "a.png")
    for extra in ([], ["overwrite=true"]):
        with pytest.raises(JobMismatchError, match=f"out={data} holds outputs of 1 image in "
                                                   "images/, masks/ but no job.json"):
            _run("label", [f"images={images}", CLASSES, f"out={data}", *extra])
    assert sorted(_files(data)) == ["images/a.png", "masks/a.png"]


def test_outputs_of_older_code_are_checked_against_their_settings(tmp_path, images, caplog):
    out = tmp_path / "out"
    _run("predict", [f"images={images}", CLASSES, f"out={out}"])
    (out / "job.json").unlink()  # as written before job.json existed: summary.json's settings
    with pytest.raises(JobMismatchError, match=r"summary\.json \(written before job\.json"
                                               r"(.|\n)*classes: "):
        _run("predict", [f"images={images}", "classes=grass,sky", f"out={out}"])
    with caplog.at_level(logging.INFO, logger="src"):
        _run("predict", [f"images={images}", CLASSES, f"out={out}"])
    assert "3 of 3 images already done" in caplog.text and "does not record" in caplog.text
    assert json.loads((out / "job.json").read_text())["classes"][0] == "grass"
    # Killed before its summary.json: only .records/ shows it is ours. Refused; overwrite works.
    (out / "job.json").unlink()
    (out / "summary.json").unlink()
    with pytest.raises(JobMismatchError, match="no job.json"):
        _run("predict", [f"images={images}", CLASSES, f"out={out}"])
    summary = _run("predict", [f"images={images}", "classes=grass,sky", f"out={out}",
                               "overwrite=true"])
    assert summary["num_images"] == 3 and summary["settings"]["classes"] == ["grass", "sky"]


def test_cli_exits_non_zero_and_names_the_field(tmp_path, images):
    out = tmp_path / "out"
    _run("predict", [f"images={images}", CLASSES, f"out={out}"])
    cmd = [sys.executable, "-m", "src.predict", f"images={images}", "classes=grass,sky",
           f"out={out}", f"hydra.run.dir={tmp_path / 'run'}", *WORLD]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "error: out=" in proc.stderr and "classes: " in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
