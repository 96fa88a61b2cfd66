"""The command line: ``python -m scripts.bench`` (``make bench``, ``make bench-gpu``). Parses the
flags, runs the chosen cases in the order given (by default the registry's), adds the headline
keys, writes ``--out`` and ``--markdown`` and prints the table."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from typing import Any

import torch

import scripts.bench
from scripts.bench.cases import CASES
from scripts.bench.harness import BenchContext, run_case
from scripts.bench.report import contract_keys, write_outputs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench",
                                     description=scripts.bench.__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated cases (default: all: {','.join(CASES)})")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per case (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    parser.add_argument("--case-timeout", type=float, default=300.0,
                        help="stop repeating a case after this many seconds (300)")
    parser.add_argument("--model", default=None,
                        help="open_clip architecture, random init (default ViT-B-16; "
                             "tiny-vit with --quick)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice; 1 with --quick)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="bf16 runs timed calls under torch.autocast; auto: bf16 on CUDA "
                             "(as training and labelling do there), fp32 on the CPU")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes on the tiny-vit test model: a smoke test")
    parser.add_argument("--out", default="bench.json", help="JSON results (bench.json)")
    parser.add_argument("--markdown", default="bench.md", help="markdown table (bench.md)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {list(CASES)}")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.model is None:
        args.model = "tiny-vit" if args.quick else "ViT-B-16"
    if args.threads is None and args.quick:
        # A tiny model gains nothing from threads, and a second thread that has to wait for a
        # core another process holds can make each op 100x slower.
        args.threads = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, fn in CASES.items():
            print(f"{name}: {(fn.__doc__ or '').strip()}")
        return 0
    threads_before = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:  # leave the caller's (e.g. a test session's) thread count as it was
        torch.set_num_threads(threads_before)


def _run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads "
          f"(interop {torch.get_num_interop_threads()}), device {device} ({device_name}), "
          f"model {args.model}, os.cpu_count()={os.cpu_count()}", flush=True)

    precision = args.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    ctx = BenchContext(model=args.model, quick=args.quick, repeats=args.repeats,
                       warmup=args.warmup, case_timeout=args.case_timeout, device=device,
                       plot_path=str(Path(args.markdown).with_name(
                           f"{Path(args.markdown).stem}_resolution.png")),
                       precision=precision)
    results: dict[str, Any] = {
        "meta": {
            "model": args.model,
            "pretrained": None,
            "quick": args.quick,
            "device": str(device),
            "device_name": device_name,
            "precision": precision,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "repeats": args.repeats,
            "warmup": args.warmup,
            "case_timeout_s": args.case_timeout,
            "order": "interleaved (A B A B ...), medians",
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "cases": {},
    }
    for name in args.cases:
        print(f"[{name}] running ...", flush=True)
        results["cases"][name] = case = run_case(CASES[name], ctx, args.case_timeout)
        for r in case["measurements"]:
            print(f"[{name}] {r['setting']}: {r['a']} / {r['b']} = {r['ratio']:.3f} "
                  f"(paired {r['paired_ratio']:.3f}, {r['repeats_run']} rounds"
                  f"{', time cap' if r['capped'] else ''})", flush=True)
    if hasattr(os, "getloadavg"):
        results["meta"]["loadavg_end"] = list(os.getloadavg())
    results.update(contract_keys(results))

    table = write_outputs(results, args.out, args.markdown)
    print()
    print(table, end="")
    print(f"\nwrote {args.out} and {args.markdown}")
    return 0
