"""Smoke test of the ``scripts.bench`` package (tiny model, one round), and of its case registry.
Speed targets are not asserted: they belong to the benchmark's report, not to a test on a
shared CPU."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import scripts.bench.cases  # noqa: E402
from scripts.bench.cases import CASE_LIST  # noqa: E402
from scripts.bench.cli import main  # noqa: E402

# Every case, in run order (the order of bench.json and of the markdown table).
CASES = ("dense_vs_encode_image", "slide_batched_vs_loop", "label_throughput", "refine_overhead",
         "teacher_share", "memory_ratio_2048x1024", "text_classifier_speedup",
         "resolution_scaling", "dense_throughput", "speedups", "frontier_heads")
CONTRACT = ("dense_vs_encode_448", "refine_overhead", "slide_batched_speedup", "teacher_share",
            "memory_ratio_2048x1024", "text_classifier_speedup", "dense_images_per_second_448",
            "labels_images_per_second_448", "precision", "machine", "commit")


def test_bench_quick_writes_json_and_markdown(tmp_path):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    threads = torch.get_num_threads()
    rc = main(["--quick", "--repeats", "1", "--warmup", "0",
               "--out", str(out), "--markdown", str(md)])
    assert rc == 0
    assert torch.get_num_threads() == threads  # main restores the caller's thread count

    results = json.loads(out.read_text())
    assert results["meta"]["quick"] is True
    assert tuple(results["cases"]) == CASES  # all of them by default, in registry order
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
    # Each frontier head is timed against MaskCLIP, and its share of a student step is a fraction.
    frontier = results["cases"]["frontier_heads"]
    assert [row["a"] for row in frontier["measurements"]] == ["scclip", "resclip", "proxyclip"]
    assert all(0 < share < 1 for share in frontier["teacher_share"].values())

    rows = [line for line in md.read_text().splitlines() if line.startswith("| ")]
    for name in CASES:
        assert any(line.startswith(f"| {name} |") for line in rows), name


def test_registry_lists_every_case_once():
    names = [name for name, _ in CASE_LIST]
    assert tuple(names) == CASES
    functions = [fn for _, fn in CASE_LIST]
    assert len(set(functions)) == len(functions)
    # Every case function in a module of scripts/bench/cases is registered (exactly once, above).
    package = scripts.bench.cases
    defined = set()
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        defined |= {fn for name, fn in inspect.getmembers(module, inspect.isfunction)
                    if name.startswith("case_") and fn.__module__ == module.__name__}
    assert defined == set(functions)
    for name, fn in CASE_LIST:
        assert f"``{name}``" in package.__doc__, name  # described for --help readers
        assert fn.__doc__, name  # what --list prints


def test_list_prints_each_case_once(capsys):
    assert main(["--list"]) == 0
    listed = [line.split(":", 1)[0] for line in capsys.readouterr().out.splitlines()
              if not line.startswith(" ")]
    assert tuple(listed) == CASES
