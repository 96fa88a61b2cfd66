"""``memory_ratio_2048x1024``: peak memory of evaluating a large image vs a small one, each
measured by ``scripts.bench.memory_worker`` in its own process."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import torch

from scripts.bench import ROOT
from scripts.bench.harness import BenchContext, CaseClock, summarize


def case_memory_ratio(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """Peak RSS (CUDA: allocated CUDA memory) of teacher evaluation: 2048×1024 (sliding window)
    vs 512² (whole), each in its own process (a process's peak RSS never goes down, and the
    process holds only this model)."""
    shapes = {"2048x1024 slide": (1024, 2048, "slide"), "512x512 whole": (512, 512, "whole")}
    if ctx.quick:
        shapes = {"256x128 slide": (128, 256, "slide"), "64x64 whole": (64, 64, "whole")}
    model = "tiny-vit" if ctx.quick else ctx.model
    peaks = {}
    for name, (h, w, mode) in shapes.items():
        command = [sys.executable, "-m", "scripts.bench.memory_worker",
                   "--threads", str(torch.get_num_threads()), "--model", model, "--mode", mode,
                   "--height", str(h), "--width", str(w), "--device", str(ctx.device),
                   "--autocast", "bfloat16" if ctx.precision == "bf16" else "float32"]
        # Run from the repository root, so that ``-m`` finds ``scripts`` and ``src`` first.
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=max(60, int(ctx.case_timeout)))
        if proc.returncode != 0:
            raise RuntimeError(f"memory case {name} failed: {proc.stderr[-2000:]}")
        base, peak, seconds = (float(v) for v in proc.stdout.split("RESULT")[1].split())
        peaks[name] = {"model_loaded_mb": base, "peak_mb": peak, "seconds": seconds}
    (big, small) = list(peaks)
    ratio = peaks[big]["peak_mb"] / peaks[small]["peak_mb"]
    row = {"setting": f"{model}, 19 classes, crop 224 stride 112, {ctx.precision}",
           "a": big, "b": small,
           "times": {big: summarize([peaks[big]["peak_mb"] / 1e3]),
                     small: summarize([peaks[small]["peak_mb"] / 1e3])},
           "ratio": ratio, "paired_ratio": ratio, "repeats_run": 1, "capped": False,
           "noisy": False}
    return {
        "description": "peak resident memory while evaluating (labels at full size); the peak "
                       "is reset after loading, so it is the model plus evaluation",
        "ratio_definition": ("peak CUDA memory" if ctx.gpu else "peak RSS")
        + " 2048x1024 slide / 512x512 whole (target <= 1.5; the A/B columns hold MB, not ms)",
        "peaks_mb": peaks,
        "measurements": [row],
    }
