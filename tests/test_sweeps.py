"""Sweep tables: status files on every path, summary.csv/md from the run folders."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.utils.config import PROJECT_ROOT
from src.utils.runs import read_status, tracked_run
from src.utils.sweeps import collect, varying_keys, write_summary


def fake_job(sweep: Path, num: int, overrides: list[str], state: str | None,
             metrics: dict | None = None, name: str = "results.json", error: str = "") -> Path:
    """A job folder in Hydra's layout, as a run leaves it."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    if metrics is not None:
        (job / name).write_text(json.dumps(metrics))
    if state is not None:
        (job / "status.json").write_text(json.dumps({"state": state, "metrics_file": name,
                                                     "error": error}))
    return job


def test_summary_of_hand_made_jobs(tmp_path):
    summary = {"mIoU": 40.0, "mIoU_seen": 42.0, "mIoU_unseen": 30.0, "hIoU": 35.0}
    corrupt = {"clean_mIoU": 40.0, "mIoU": {"gaussian_noise": {1: 30.0, 2: 20.0},
                                              "jpeg": {1: 36.0, 2: 34.0}}}
    fake_job(tmp_path, 0, ["experiment=world_maskclip", "refine=none", "seed=1"], "completed",
             {"summary": summary, "corruptions": corrupt})
    fake_job(tmp_path, 1, ["experiment=world_maskclip", "refine=ks", "seed=1"], "failed",
             error="FileNotFoundError: /w.pt | missing")
    fake_job(tmp_path, 10, ["experiment=world_maskclip", "refine=kspd", "seed=1"], "completed",
             {"summary": {**summary, "mIoU": 41.5}})
    fake_job(tmp_path, 2, ["experiment=world_maskclip", "refine=pd", "seed=1"], None)  # died
    rows = collect(tmp_path)
    assert [r["job"] for r in rows] == ["0", "1", "2", "10"]  # numeric order, not "10" < "2"
    assert [r["state"] for r in rows] == ["completed", "failed", "unknown", "completed"]
    assert varying_keys(rows) == ["refine"]
    assert rows[0]["corruption_mean"] == pytest.approx((30 + 20 + 36 + 34) / 4)
    csv_path, md_path = write_summary(tmp_path)
    with csv_path.open() as f:
        table = list(csv.DictReader(f))
    assert [t["refine"] for t in table] == ["none", "ks", "pd", "kspd"]
    assert table[0]["mIoU"] == "40.00" and table[3]["mIoU"] == "41.50"
    assert table[1]["mIoU"] == "failed" and "FileNotFoundError" in table[1]["error"]
    assert table[2]["mIoU"] == "unknown"
    assert "seed" not in table[0] and "experiment" not in table[0]  # constant overrides
    md = md_path.read_text()
    assert "4 jobs, 2 completed, 2 not completed" in md
    assert "\\|" in md  # a '|' inside a cell does not break the markdown row


def test_train_metrics_prefer_test_then_val(tmp_path):
    fake_job(tmp_path, 0, ["lr=0.1"], "completed", {"val/mIoU": 30.0, "train/loss": 1.0},
             name="metrics.json")
    fake_job(tmp_path, 1, ["lr=0.2"], "completed",
             {"val/mIoU": 31.0, "test/mIoU": 33.0, "test/hIoU": 20.0}, name="metrics.json")
    rows = collect(tmp_path)
    assert (rows[0]["mIoU"], rows[0]["split"]) == (30.0, "val")
    assert (rows[1]["mIoU"], rows[1]["hIoU"], rows[1]["split"]) == (33.0, 20.0, "test")


def test_tracked_run_writes_status_on_success_and_failure(tmp_path):
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path / "ok")}})
    seen = {}

    @tracked_run("eval", "results.json")
    def works(c):
        seen["during"] = read_status(c.paths.output_dir)["state"]
        return 7

    assert works(cfg) == 7
    assert seen["during"] == "running"
    assert read_status(tmp_path / "ok")["state"] == "completed"

    @tracked_run("train", "metrics.json")
    def breaks(c):
        raise ValueError("teacher.pretrained=/x.pt: no such file")

    bad = OmegaConf.create({"paths": {"output_dir": str(tmp_path / "bad")}})
    with pytest.raises(ValueError):
        breaks(bad)
    status = read_status(tmp_path / "bad")
    assert status["state"] == "failed" and status["task"] == "train"
    assert status["error"] == "ValueError: teacher.pretrained=/x.pt: no such file"


def test_a_real_eval_sweep_with_a_failed_job_ends_in_a_table(tmp_path):
    """`python -m src.eval -m` over refine × weights, where the missing weights file fails two
    jobs: the sweep exits non-zero, and summary.csv has all four rows, two marked failed."""
    cmd = [sys.executable, "-m", "src.eval", "-m", "experiment=world_maskclip", "teacher=tiny",
           "refine=none,ks", "teacher.pretrained=null,/does/not/exist.pt",
           "data.dataset_kwargs.num_images=4", "logger=csv", "trainer.accelerator=cpu",
           "trainer.enable_progress_bar=false", f"paths.log_dir={tmp_path}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode != 0  # a failed job fails the sweep ...
    (summary,) = tmp_path.rglob("summary.csv")  # ... and the table is there anyway
    with summary.open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4
    assert {(t["refine"], t["teacher.pretrained"]) for t in table} == {
        ("none", "null"), ("ks", "null"), ("none", "/does/not/exist.pt"),
        ("ks", "/does/not/exist.pt")}
    for row in table:
        job = summary.parent / row["run_dir"]
        tree = (job / "config_tree.log").read_text()  # printed at start, saved in the folder
        assert "teacher" in tree and row["teacher.pretrained"] in tree
        if row["teacher.pretrained"] == "null":
            assert row["state"] == "completed"
            results = json.loads((job / "results.json").read_text())
            assert float(row["mIoU"]) == pytest.approx(results["summary"]["mIoU"], abs=0.005)
        else:
            assert row["state"] == "failed" and row["mIoU"] == "failed"
            assert "exist.pt" in row["error"]
    # the rebuild command gives the same table
    before = summary.read_text()
    summary.unlink()
    rebuilt = subprocess.run([sys.executable, "scripts/sweep_table.py", str(summary.parent)],
                             cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert summary.read_text() == before


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweeps_in_other_processes_end_in_the_same_table(launcher, tmp_path):
    """Jobs run by joblib workers or submitit (the tested stand-in for SLURM) write their own
    folders; the table is built from them, a failed job included."""
    cmd = [sys.executable, "-m", "src.eval", "-m", f"hydra/launcher={launcher}",
           "experiment=world_maskclip", "teacher=tiny",
           "teacher.pretrained=null,/does/not/exist.pt", "data.dataset_kwargs.num_images=4",
           "logger=csv", "trainer.enable_progress_bar=false", f"paths.log_dir={tmp_path}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode != 0
    (summary,) = tmp_path.rglob("summary.csv")
    with summary.open() as f:
        table = {row["teacher.pretrained"]: row for row in csv.DictReader(f)}
    assert table["null"]["state"] == "completed" and float(table["null"]["mIoU"]) >= 0
    assert table["/does/not/exist.pt"]["state"] == "failed"
    assert "FileNotFoundError" in table["/does/not/exist.pt"]["error"]


def test_loggers_are_finished_on_every_path(tmp_path, monkeypatch):
    """A W&B run left open after a failure would stay incomplete on disk; the wrapper closes
    it with exit code 1 (0 after success). W&B itself is replaced by a recorder here."""
    import types

    calls = []
    recorder = types.SimpleNamespace(run=object(), finish=lambda exit_code: calls.append(
        exit_code))
    monkeypatch.setitem(sys.modules, "wandb", recorder)
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "print_config": False})

    @tracked_run("eval", "results.json")
    def fails(c):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fails(cfg)
    tracked_run("eval", "results.json")(lambda c: None)(cfg)
    assert calls == [1, 0]
    assert not (tmp_path / "config_tree.log").exists()  # print_config=false


def test_bench8_table_reads_completed_runs_only(tmp_path):
    """The 8-benchmark table gathers runs through the sweep reader: a failed run's stale
    results.json (from an earlier attempt in the same folder) is not a result."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from scripts.bench8_table import gather

    def result(miou):
        return {"summary": {"mIoU": miou}, "settings": {"head": "maskclip", "protocol": "common",
                                                        "postproc": "none", "data": "voc21"}}

    fake_job(tmp_path, 0, ["data=voc21"], "completed", result(40.0))
    fake_job(tmp_path, 1, ["data=voc21"], "failed", result(99.0), error="RuntimeError: x")
    assert gather([tmp_path]) == {("maskclip", "common", "none"): {"voc21": 40.0}}
