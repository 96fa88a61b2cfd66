"""The outputs: the headline keys of ``bench.json`` and the markdown table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from scripts.bench import ROOT
from scripts.bench.harness import BUSY_CORES, NOISY_SPREAD


# ---------------------------------------------------------------------------- output contract
def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def contract_keys(results: dict[str, Any]) -> dict[str, Any]:
    """The comparable headline numbers (one per case) plus ``machine`` and ``commit``."""
    cases = results["cases"]

    def row(case: str, match: str | None = None) -> float | None:
        rows = cases.get(case, {}).get("measurements", [])
        for r in rows:
            if match is None or match in r["setting"] or match in r["b"]:
                return r["ratio"]
        return None

    return {
        "dense_vs_encode_448": row("dense_vs_encode_image", "448x448, batch 1"),
        "refine_overhead": row("refine_overhead"),
        "slide_batched_speedup": row("slide_batched_vs_loop", "VOC"),
        "teacher_share": cases.get("teacher_share", {}).get("teacher_share"),
        "memory_ratio_2048x1024": row("memory_ratio_2048x1024"),
        "text_classifier_speedup": row("text_classifier_speedup"),
        "dense_images_per_second_448": cases.get("dense_throughput", {}).get(
            "best_dense_images_per_second"),
        "labels_images_per_second_448": cases.get("dense_throughput", {}).get(
            "best_labels_images_per_second"),
        "precision": results["meta"].get("precision"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "device": results["meta"].get("device_name")},
        "commit": _commit(),
    }


# ---------------------------------------------------------------------------- markdown
def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Model `{meta['model']}` (random init), device `{meta['device']}` "
        f"({meta.get('device_name')}, {meta.get('precision', 'fp32')}), "
        f"torch {meta['torch']} with {meta['torch_threads']} threads; "
        f"{meta['warmup']} warm-up + up to {meta['repeats']} interleaved rounds, medians.",
        "",
        "| case | setting | A | B | A median (ms) | B median (ms) | ratio A/B | paired ratio "
        "| rounds |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, case in results["cases"].items():
        busy = case.get("other_cores_busy")
        for row in case["measurements"]:
            ta, tb = row["times"][row["a"]], row["times"][row["b"]]
            rounds = str(row["repeats_run"])
            if row["capped"]:
                rounds += " (time cap)"
            if row["noisy"]:
                rounds += " (noisy)"
            if busy is not None and busy > BUSY_CORES:
                rounds += " (busy machine)"
            lines.append(
                f"| {name} | {row['setting']} | {row['a']} | {row['b']} | "
                f"{_ms(ta['median_s'])} | {_ms(tb['median_s'])} | {row['ratio']:.3f} | "
                f"{row['paired_ratio']:.3f} | {rounds} |"
            )
    lines.append("")
    for name, case in results["cases"].items():
        lines.append(f"- `{name}`: ratio = {case['ratio_definition']}.")
    lines.append(f"- noisy: a variant's median absolute deviation exceeds "
                 f"{NOISY_SPREAD:.0%} of its median.")
    busy = {n: c.get("other_cores_busy") for n, c in results["cases"].items()}
    if any(v is not None for v in busy.values()):
        lines.append("- other processes kept busy, on average, "
                     + "; ".join(f"{v:.2f} of {meta['cpu_count']} cores during `{n}`"
                                 for n, v in busy.items() if v is not None)
                     + f" (busy machine: > {BUSY_CORES}).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- files
def write_outputs(results: dict[str, Any], out: str | Path, markdown: str | Path) -> str:
    """Write ``results`` as JSON to ``out`` and its markdown table to ``markdown`` (creating
    their folders); return the table."""
    table = markdown_table(results)
    for path, text in ((out, json.dumps(results, indent=2) + "\n"), (markdown, table)):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return table
