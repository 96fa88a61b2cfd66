"""Smoke test of ``scripts/bench.py`` (tiny model, one round). Speed targets are not asserted:
they belong to the benchmark's report, not to a test on a shared CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import bench  # noqa: E402

CASES = ("dense_vs_encode_image", "slide_batched_vs_loop", "refine_overhead", "teacher_share",
         "memory_ratio_2048x1024", "text_classifier_speedup", "resolution_scaling",
         "label_throughput", "dense_throughput", "speedups")
CONTRACT = ("dense_vs_encode_448", "refine_overhead", "slide_batched_speedup", "teacher_share",
            "memory_ratio_2048x1024", "text_classifier_speedup", "dense_images_per_second_448",
            "labels_images_per_second_448", "precision", "machine", "commit")


def test_bench_quick_writes_json_and_markdown(tmp_path):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    threads = torch.get_num_threads()
    rc = bench.main(["--quick", "--repeats", "1", "--warmup", "0",
                     "--out", str(out), "--markdown", str(md)])
    assert rc == 0
    assert torch.get_num_threads() == threads  # main restores the caller's thread count

    results = json.loads(out.read_text())
    assert results["meta"]["quick"] is True
    assert set(CASES) <= set(bench.CASES)
    for name in CASES:
        case = results["cases"][name]
        assert case["ratio"] > 0
        assert case["repeats_run"] == 1
        assert case["measurements"]
        for row in case["measurements"]:
            assert row["ratio"] > 0 and row["paired_ratio"] > 0
            for variant in (row["a"], row["b"]):
                assert row["times"][variant]["median_s"] > 0
    # Batched and looped sliding windows give the same scores.
    assert results["cases"]["slide_batched_vs_loop"]["max_abs_diff_batched_vs_loop"] < 1e-4
    # Our text classifier equals open_clip's.
    assert results["cases"]["text_classifier_speedup"]["max_abs_diff"] <= 1e-5
    assert set(CONTRACT) <= set(results)
    assert 0 < results["teacher_share"] < 1 and results["machine"]["cores"] >= 1
    assert results["precision"] == "fp32"  # the CPU's default
    assert results["dense_images_per_second_448"] > 0
    # Each candidate speed-up is measured (torch.compile, if it fails here, says why).
    speedups = results["cases"]["speedups"]
    assert len(speedups["measurements"]) + ("compile_error" in speedups) == 4
    assert (md.parent / "bench_resolution.png").is_file()

    rows = [line for line in md.read_text().splitlines() if line.startswith("| ")]
    for name in CASES:
        assert any(line.startswith(f"| {name} |") for line in rows), name
