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
    python scripts/world_heads.py --windows       # whole crop vs native windows (val split)
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
# Passive OpenMP waiting: spinning threads stall badly when another job shares the 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of heads not run now from the existing --docs JSON")
    parser.add_argument("--windows", action="store_true",
                        help="only the crop-labelling check: whole crop vs native windows "
                             "(docs/world_label_windows.md)")
    args = parser.parse_args(argv)
    if args.windows:
        chosen = args.heads if args.heads != ",".join(HEADS) else "maskclip,scclip,resclip"
        return label_windows(chosen)

    from src.eval import evaluate
    from src.train import train
    from src.utils.experiments import compose_config

    out = Path(args.out)
    docs = Path(args.docs)
    rows: dict[str, dict] = {}
    if args.merge and docs.with_suffix(".json").is_file():
        rows = json.loads(docs.with_suffix(".json").read_text())
    for head in filter(None, args.heads.split(",")):  # --merge --heads "" re-renders the doc
        start = time.time()
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
        row["seconds"] = round(time.time() - start)
        rows[head] = row
    rows = {head: rows[head] for head in [*HEADS, *rows] if head in rows}  # table order

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
    seconds = sum(row.get("seconds", 0) for row in rows.values())
    untimed = [LABELS.get(head, head) for head, row in rows.items() if "seconds" not in row]
    earlier = (f" Rows kept from an earlier run (`--merge`): {', '.join(untimed)}."
               if untimed else "")
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    docs.with_suffix(".md").write_text(
        "Offline world, test split (200 scenes), mIoU in %. Teacher: the world CLIP with each "
        "head (whole image, no KS/PD); PAMR: 10 steps, dilations 8/16. Student: "
        "`experiment=world_annofree teacher/head=<head>` (tiny DeepLabv2, 800 steps × 8 crops), "
        "tested on the same split. Nothing is chosen on the test split: every head runs with its "
        "defaults. `python scripts/world_heads.py` "
        f"({seconds} s on this machine, the rows' times summed).{earlier}\n\n" + table)
    print(f"wrote {docs.with_suffix('.md')}")
    return 0


def label_windows(heads: str, size: int = 192, window: int = 96, stride: int = 48,
                  doc: Path = ROOT / "docs" / "world_label_windows") -> int:
    """Whole crop vs native windows for a head's pseudo-labels, on the world's VALIDATION split.

    On real data MaskCLIP+ labels 512-px training crops while SC-CLIP's and ResCLIP's statistics
    live per 224-px window (CLIP's native input), so their configs label a crop with 224/112
    windows. The world's scenes and crops are 96 px, the world CLIP's native input, so both
    settings coincide there; this check rebuilds the real-data situation: scenes of ``size`` px
    (twice the native size), labelled whole or with ``window``/``stride`` windows (the native
    size, half of it as stride), each head's teacher evaluated on the val split.
    """
    from src.eval import evaluate
    from src.utils.experiments import compose_config

    scene = [f"data.dataset_kwargs.image_size={size}", f"data.test_scale=[{size},{size}]",
             "data.test_split=val", *COMMON]
    modes = {"whole crop": ["inference=whole"],
             f"{window}/{stride} windows": ["inference=slide",
                                            f"inference.crop_size=[{window},{window}]",
                                            f"inference.stride=[{stride},{stride}]"]}
    record: dict = {"size": size, "split": "val", "rows": {}, "seconds": {}}
    if doc.with_suffix(".json").is_file():  # other heads' rows stay
        record = json.loads(doc.with_suffix(".json").read_text())
    for head in heads.split(","):
        start = time.time()
        record["rows"][head] = {}
        for mode, extra in modes.items():
            run_dir = ROOT / "logs" / "world_label_windows" / head / mode.replace("/", "_")
            cfg = compose_config("eval", ["experiment=world_maskclip", f"teacher/head={head}",
                                          *scene, *extra, f"paths.output_dir={run_dir}"])
            miou = evaluate(cfg)["summary"]["mIoU"]
            record["rows"][head][mode] = miou
            print(f"[{time.time() - start:.0f} s] {head} {mode}: {miou:.1f}", flush=True)
        record["seconds"][head] = round(time.time() - start)
    lines = [f"| head | {' | '.join(modes)} | windows − whole |", "|---|" + "---:|" * 3]
    for head, row in record["rows"].items():
        whole, windows = row.values()
        lines.append(f"| {LABELS.get(head, head)} | {whole:.1f} | {windows:.1f} | "
                     f"{windows - whole:+.1f} |")
    doc.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    doc.with_suffix(".md").write_text(
        f"Pseudo-label windows on the offline world: each head's teacher on {size}-px scenes of "
        f"the **validation** split (mIoU %), labelling the whole scene or {window}-px windows "
        f"(the world CLIP's native input) with stride {stride}. It mirrors MaskCLIP+ on real "
        "data, where a 512-px training crop is labelled whole or with 224/112 windows "
        "(`teacher.pseudo_label_inference`, set for SC-CLIP and ResCLIP). "
        f"`python scripts/world_heads.py --windows` ({sum(record['seconds'].values())} s, the "
        "heads' times summed).\n\n"
        + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
