"""scripts/world_fresh.py: the claims computed from one world's results, and their mean ± std."""

from __future__ import annotations

import math
import statistics

import pytest

from scripts.world_fresh import CLAIMS, STUDENT_CROP, TEACHERS, render, world_claims


def fake_world(maskclip, naive, kspd, student, teacher_unseen, selftrained_unseen):
    def summary(miou, unseen=0.0):
        return {"mIoU": miou, "mIoU_seen": miou, "mIoU_unseen": unseen, "hIoU": miou}

    return {"maskclip": {"summary": summary(maskclip)}, "naive": {"summary": summary(naive)},
            "maskclip_kspd": {"summary": summary(kspd)},
            "maskclip_windows": {"summary": summary(maskclip + 4.0)},
            "student_annofree": {"summary": summary(student)},
            "student_zs_teacher": {"summary": summary(50.0, teacher_unseen)},
            "student_zs": {"summary": summary(70.0, selftrained_unseen)}}


def test_world_claims_are_the_differences_the_docs_name():
    claims = world_claims(fake_world(36.0, 18.0, 38.5, 42.0, 23.0, 27.5))
    assert claims == {"value_ratio": 2.0, "value_gain": 18.0, "kspd_gain": 2.5,
                      "student_gain": 6.0, "selftrain_gain": 4.5}
    assert world_claims(fake_world(30.0, 0.0, 30.0, 30.0, 0.0, 0.0))["value_ratio"] == math.inf


def record(offset, results):
    return {"seed_offset": offset, "results": {k: v["summary"] for k, v in results.items()},
            "claims": world_claims(results)}


def test_render_reports_mean_and_sample_std_over_fresh_worlds_only():
    records = {0: record(0, fake_world(40.0, 10.0, 41.0, 60.0, 20.0, 30.0)),
               1: record(1, fake_world(36.0, 18.0, 38.0, 42.0, 23.0, 27.0)),
               2: record(2, fake_world(34.0, 17.0, 33.0, 37.0, 20.0, 21.0)),
               3: record(3, fake_world(38.0, 19.0, 40.0, 45.0, 25.0, 24.0))}
    text, summary = render(records, [1, 2, 3], train_seed=0)
    gains = [42.0 - 36.0, 37.0 - 34.0, 45.0 - 38.0]
    assert summary["student_gain"]["mean"] == pytest.approx(statistics.fmean(gains))
    assert summary["student_gain"]["std"] == pytest.approx(statistics.stdev(gains))
    assert summary["student_gain"]["standard"] == 20.0  # shown, never averaged in
    # mean +5.33 >= +5 although one world falls short: the claim is judged on the mean
    assert summary["student_gain"]["met_on_mean"]
    selftrain = [4.0, 1.0, -1.0]
    assert summary["selftrain_gain"]["mean"] == pytest.approx(statistics.fmean(selftrain))
    assert summary["kspd_gain"]["met_on_mean"] == (statistics.fmean([2.0, -1.0, 2.0]) > 0)
    assert set(summary) == set(CLAIMS)
    assert "| standard (0) | world 1 | world 2 | world 3 |" in text
    assert "+5.3 ± 2.1" in text and "seed_offset 1, 2, 3" in text
    assert "Torch CPU threads: not recorded" in text  # records written before the key existed


def test_render_states_the_thread_counts_the_worlds_were_measured_with():
    records = {k: {**record(k, fake_world(36.0, 18.0, 38.0, 42.0, 23.0, 27.0)),
                   "torch_threads": threads} for k, threads in ((1, 1), (2, 2), (3, 1))}
    assert "Torch CPU threads: 1, 2;" in render(records, [1, 2, 3], train_seed=0)[0]


def test_a_claim_below_target_on_the_mean_is_reported_not_met():
    records = {k: record(k, fake_world(36.0, 18.0, 38.0, 36.0 + g, 23.0, 27.0))
               for k, g in ((1, 2.0), (2, 3.0), (3, 4.0))}
    text, summary = render(records, [1, 2, 3], train_seed=0)
    assert not summary["student_gain"]["met_on_mean"]
    assert ">= +5: NOT met" in text and "standard (0)" not in text


def test_the_windows_row_uses_the_annotation_free_students_crop():
    """The context row evaluates the teacher in windows of the size it labels during training."""
    from src.utils.experiments import compose_config

    cfg = compose_config("train", ["experiment=world_annofree"])
    assert list(cfg.data.crop_size) == [STUDENT_CROP, STUDENT_CROP]
    assert f"inference.crop_size=[{STUDENT_CROP},{STUDENT_CROP}]" in TEACHERS["maskclip_windows"]
