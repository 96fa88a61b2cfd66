#!/usr/bin/env python
"""Every training-free head on the offline world, as teacher and as the teacher of a student.

For each head (MaskCLIP, ClearCLIP, SCLIP, NACLIP, the naive baseline, and the frontier heads
SC-CLIP, ResCLIP and ProxyCLIP) this evaluates the world CLIP teacher on the world's test split,
with and without PAMR, then trains the annotation-free MaskCLIP+ student
(``experiment=world_annofree teacher/head=<head>``) and tests it. Every head runs with its
defaults (ResCLIP: its README's VOC-21 options; block indices mapped to the world CLIP's 4 blocks
as each head documents); nothing is chosen on the test split. ProxyCLIP's proxy is the world's
self-supervised ViT (``teacher/head=proxyclip_world``: ``assets/world_proxy``,
``make world-proxy``). Everything goes through
``src.eval`` / ``src.train``; nothing is downloaded.

    python scripts/world_heads.py                 # → docs/world_heads.md / .json (~25 min, 2 cores)
    python scripts/world_heads.py --no-students   # teachers only (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

HEADS = ("maskclip", "clearclip", "sclip", "naclip", "naive", "scclip", "resclip",
         "proxyclip_world")
LABELS = {"maskclip": "MaskCLIP", "clearclip": "ClearCLIP", "sclip": "SCLIP",
          "naclip": "NACLIP", "naive": "naive (unchanged last block)", "scclip": "SC-CLIP",
          "resclip": "ResCLIP (on NACLIP)",
          "proxyclip_world": "ProxyCLIP (world proxy ViT, patch 4)"}
COMMON = ["logger=csv", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "logs" / "world_heads"))
    parser.add_argument("--docs", default=str(ROOT / "docs" / "world_heads"))
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--no-students", action="store_true")
    parser.add_argument("--resume", action="store_true",
                        help="reuse students whose run folder already has metrics.json")
    parser.add_argument("--student-steps", type=int, default=None,
                        help="override world_annofree's max_steps (default: the experiment's)")
    args = parser.parse_args(argv)

    from src.eval import evaluate
    from src.train import train
    from src.utils.experiments import compose_config

    out = Path(args.out)
    rows: dict[str, dict] = {}
    start = time.time()
    for head in args.heads.split(","):
        row: dict = {}
        for key, extra in (("teacher", []), ("teacher_pamr", ["postproc=pamr"])):
            cfg = compose_config(
                "eval", ["experiment=world_maskclip", f"teacher/head={head}", *extra, *COMMON,
                         f"paths.output_dir={out / head / key}"])
            row[key] = evaluate(cfg)["summary"]
            print(f"[{time.time() - start:.0f} s] {head} {key}: {row[key]['mIoU']:.1f}", flush=True)
        done = out / head / "student" / "metrics.json"
        if not args.no_students and args.resume and done.is_file():
            metrics = json.loads(done.read_text())
            row["student"] = {k.split("/", 1)[1]: v for k, v in metrics.items()
                              if k.startswith("test/")}
            print(f"{head} student: reused {done}: {row['student']['mIoU']:.1f}", flush=True)
        elif not args.no_students:
            steps = [f"max_steps={args.student_steps}"] if args.student_steps else []
            cfg = compose_config(
                "train", ["experiment=world_annofree", f"teacher/head={head}", *steps, *COMMON,
                          f"paths.output_dir={out / head / 'student'}"])
            metrics = train(cfg)
            row["student"] = {k.split("/", 1)[1]: v for k, v in metrics.items()
                              if k.startswith("test/")}
            print(f"[{time.time() - start:.0f} s] {head} student: {row['student']['mIoU']:.1f}",
                  flush=True)
        rows[head] = row

    lines = ["| head | teacher mIoU | + PAMR | student mIoU (annotation-free) | student − teacher "
             "| teacher seen / unseen |", "|---|---:|---:|---:|---:|---|"]
    for head, row in rows.items():
        teacher = row["teacher"]
        student = row.get("student")
        lines.append(
            f"| {LABELS.get(head, head)} | {teacher['mIoU']:.1f} | {row['teacher_pamr']['mIoU']:.1f} "
            f"| {student['mIoU']:.1f} | {student['mIoU'] - teacher['mIoU']:+.1f} "
            if student else
            f"| {LABELS.get(head, head)} | {teacher['mIoU']:.1f} | {row['teacher_pamr']['mIoU']:.1f} "
            f"| – | – ")
        lines[-1] += f"| {teacher['mIoU_seen']:.1f} / {teacher['mIoU_unseen']:.1f} |"
    table = "\n".join(lines) + "\n"
    print(table)
    docs = Path(args.docs)
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    docs.with_suffix(".md").write_text(
        "Offline world, test split (200 scenes), mIoU in %. Teacher: the world CLIP with each "
        "head (whole image, no KS/PD); PAMR: 10 steps, dilations 8/16. Student: "
        "`experiment=world_annofree teacher/head=<head>` (tiny DeepLabv2, 800 steps × 8 crops), "
        "tested on the same split. `python scripts/world_heads.py` "
        f"({time.time() - start:.0f} s on this machine).\n\n" + table)
    print(f"wrote {docs.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
