"""``resolution_scaling``: whole image vs sliding window as the input grows, with a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from scripts.bench.cases.common import VOC20
from scripts.bench.harness import BenchContext, CaseClock, compare, interleave


def case_resolution_scaling(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """Whole-image vs sliding-window (224/112) teacher scores at 224, 448 and 896; a PNG plot."""
    from src.models.inference import InferenceConfig, slide_scores, whole_scores

    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    s = teacher.output_stride
    sizes = (32, 64, 128) if ctx.quick else (224, 448, 896)
    crop, stride = (32, 16) if ctx.quick else (224, 112)
    cfg = InferenceConfig(mode="slide", crop_size=crop, stride=stride, crop_batch_size=8)

    def fn(crops):
        return teacher.query_scores(crops)[0]

    rows, curve = [], {"whole": [], "slide": []}
    for size in sizes:
        x = torch.randn(1, 3, size, size, device=ctx.device)
        # CPU: one timed round at the largest size (~15 s per variant and round)
        rounds = 1 if size == sizes[-1] and not ctx.gpu and not ctx.quick else 2
        session = interleave({"whole": lambda: whole_scores(fn, x, s),
                              "slide": lambda: slide_scores(fn, x, s, cfg)},
                             ctx.limited(rounds, warmup=1), clock)
        row = compare(session, "slide", "whole", f"{size}x{size}")
        rows.append(row)
        for name in curve:
            curve[name].append(row["times"][name]["median_s"])
    plot = Path(ctx.plot_path) if ctx.plot_path else None
    if plot is not None:
        _plot(plot, sizes, curve, f"{ctx.model}: whole vs slide {crop}/{stride}")
    return {
        "description": "cost growth with resolution, whole image vs sliding window",
        "ratio_definition": "slide / whole at each size",
        "seconds": {"sizes": list(sizes), **curve},
        "plot": None if plot is None else str(plot),
        "measurements": rows,
    }


def _plot(path: Path, sizes: tuple[int, ...], curve: dict[str, list[float]], title: str) -> None:
    """Seconds per image against the input side, log-log, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, values in curve.items():
        ax.plot(sizes, values, marker="o", label=name)
    ax.set_xlabel("input side (px)")
    ax.set_ylabel("seconds per image")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
