#!/usr/bin/env python
"""How much the official code's quirks move the numbers: both fidelity presets on the world.

On the offline world (test split, 200 scenes) this evaluates MaskCLIP (plain and KS+PD) and
trains and tests the annotation-free MaskCLIP+ student, once with ``fidelity=clip`` (the world
experiments' default) and once with ``fidelity=official`` (the paper experiments' default), by
adding ``fidelity=...`` to the world experiments. Everything goes through ``src.eval`` /
``src.train``; nothing is downloaded.

The world CLIP already uses exact GELU and its 96² scenes are a multiple of the patch (8), so
of the teacher items only the LayerNorm eps and the normalisation change there; the student gets
the loss averaging, crop rule, photometric distortion, decoder init and two-step test resize.

    python scripts/world_fidelity.py                   # → docs/world_fidelity.md / .json
    python scripts/world_fidelity.py --seeds 0,1,2     # the student over three seeds
    python scripts/world_fidelity.py --only student:clip:1   # recompute one run, keep the rest

Each teacher evaluation takes seconds; each student run about 4 minutes on 2 free CPU cores.
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

PRESETS = ("clip", "official")
COMMON = ["logger=csv", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]
ROWS = {"maskclip": ("MaskCLIP", "eval", ["experiment=world_maskclip"]),
        "maskclip_kspd": ("MaskCLIP + KS + PD", "eval", ["experiment=world_maskclip_kspd"]),
        # 96² crops: the comparison is between the presets, on the recipe it was measured with
        # (world_annofree's crop became 64² afterwards, issue 16; docs/world_schedules.md)
        "student": ("MaskCLIP+ annotation-free student (800 steps, 96² crops)", "train",
                    ["experiment=world_annofree", "data.crop_size=[96,96]"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "logs" / "world_fidelity"))
    parser.add_argument("--docs", default=str(ROOT / "docs" / "world_fidelity"))
    parser.add_argument("--student-steps", type=int, default=None,
                        help="override world_annofree's max_steps (default: the experiment's)")
    parser.add_argument("--no-students", action="store_true")
    parser.add_argument("--seeds", default="0",
                        help="comma-separated training seeds for the student (teachers: seed 0)")
    parser.add_argument("--only", default=None,
                        help="comma-separated row:preset:seed runs to (re)compute; the others "
                             "are kept from the existing --docs JSON")
    args = parser.parse_args(argv)

    from src.eval import evaluate
    from src.train import train
    from src.utils.config import fidelity_items
    from src.utils.experiments import compose_config

    docs = Path(args.docs)
    results: dict[str, dict] = (json.loads(docs.with_suffix(".json").read_text())
                                if args.only and docs.with_suffix(".json").is_file() else {})
    only = set(args.only.split(",")) if args.only else None
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.time()
    for key, (_, entry, overrides) in ROWS.items():
        if entry == "train" and args.no_students:
            continue
        for preset in PRESETS:
            for seed in (seeds if entry == "train" else [0]):
                if only is not None and f"{key}:{preset}:{seed}" not in only:
                    continue
                out = Path(args.out) / key / preset / f"seed{seed}"
                extra = ([f"max_steps={args.student_steps}"]
                         if entry == "train" and args.student_steps else [])
                cfg = compose_config(entry, [*overrides, f"fidelity={preset}", f"seed={seed}",
                                             *extra, *COMMON, f"paths.output_dir={out}"])
                began = time.time()
                if entry == "eval":
                    summary = evaluate(cfg)["summary"]
                else:
                    metrics = train(cfg)
                    summary = {k.split("/", 1)[1]: v for k, v in metrics.items()
                               if k.startswith("test/")}
                runs = results.setdefault(key, {}).setdefault(preset, {})
                runs[str(seed)] = {"summary": summary, "items": fidelity_items(cfg),
                                   "seconds": round(time.time() - began, 1)}
                print(f"[{time.time() - start:.0f} s] {key} fidelity={preset} seed={seed}: "
                      f"{summary['mIoU']:.2f}", flush=True)

    lines = ["| model | `fidelity=clip` | `fidelity=official` | official − clip | seeds |",
             "|---|---:|---:|---:|---:|"]
    for key, by_preset in results.items():
        means = {}
        for preset in PRESETS:
            values = [run["summary"]["mIoU"] for run in by_preset.get(preset, {}).values()]
            means[preset] = (sum(values) / len(values), min(values), max(values), len(values))
        cells = [f"{m:.1f}" + (f" ({lo:.1f}–{hi:.1f})" if n > 1 else "")
                 for m, lo, hi, n in means.values()]
        diff = means["official"][0] - means["clip"][0]
        lines.append(f"| {ROWS[key][0]} | {cells[0]} | {cells[1]} | {diff:+.1f} | "
                     f"{min(m[3] for m in means.values())} |")
    table = "\n".join(lines) + "\n"
    print(table)
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.with_suffix(".json").write_text(json.dumps(results, indent=2))
    docs.with_suffix(".md").write_text(
        "Offline world, test split (200 scenes), mIoU in %, under both fidelity presets; for "
        "several seeds the mean and (min–max). The world CLIP has exact GELU and 96² scenes (a "
        "multiple of its patch 8), so the teacher items that change are the LayerNorm eps "
        "(1e-5 → 1e-6) and the normalisation (the CLIP's → ImageNet's); the student also gets "
        "items 2 and 6–10 of the README's fidelity table. `python scripts/world_fidelity.py "
        "--seeds 0,1,2` (per-run seconds in the JSON).\n\n" + table)
    print(f"wrote {docs.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
