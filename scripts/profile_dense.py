#!/usr/bin/env python
"""Where the time goes: torch.profiler over the teacher's dense pass and CLIP's encode_image.

Usage: ``python scripts/profile_dense.py [--device cuda] [--size 448] [--batch 32]``. Prints,
for each of the two, the operators by self time (device time on CUDA), and writes both tables
(and Chrome traces with ``--trace-dir``). Random weights: they do not change the timings.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rows", type=int, default=15, help="operators shown per table")
    parser.add_argument("--out", default=None, help="also write the tables to this file")
    parser.add_argument("--trace-dir", default=None, help="write Chrome traces here")
    args = parser.parse_args(argv)

    from scripts.bench.harness import BenchContext, encode_twin as _encode_twin

    device = torch.device(args.device)
    ctx = BenchContext(model=args.model, quick=False, repeats=1, warmup=0, case_timeout=0,
                       device=device, precision="bf16" if device.type == "cuda" else "fp32")
    teacher = ctx.teacher()
    clip = _encode_twin(teacher, args.size, device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    runs = {"dense_features": lambda: teacher.dense_features(x),
            "encode_image": lambda: clip.encode_image(x)}
    sort_key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    report = []
    for name, fn in runs.items():
        with torch.no_grad(), ctx.autocast():
            for _ in range(3):  # warm-up: cuBLAS handles, autotuning
                fn()
            ctx.sync()
            with profile(activities=activities) as prof:
                for _ in range(5):
                    fn()
                ctx.sync()
        table = prof.key_averages().table(sort_by=sort_key, row_limit=args.rows)
        report.append(f"## {name}: {args.model}, {args.batch}x3x{args.size}x{args.size}, "
                      f"{ctx.precision}, {device} (5 calls)\n{table}")
        if args.trace_dir:
            Path(args.trace_dir).mkdir(parents=True, exist_ok=True)
            prof.export_chrome_trace(str(Path(args.trace_dir) / f"{name}.json"))
    text = "\n".join(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
