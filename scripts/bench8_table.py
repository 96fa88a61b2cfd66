#!/usr/bin/env python
"""Gather src.eval runs of the 8-benchmark protocol into one markdown table, beside the peers.

    python -m src.eval -m experiment=bench8 \\
        data=voc21,context60,cocoobject,voc20,context59,cocostuff,cityscapes,ade20k \\
        teacher/head=maskclip,clearclip,sclip,naclip
    python scripts/bench8_table.py logs/bench8/multiruns/<time> [--out bench8.md]

Every ``results.json`` under the given folders is read; its ``settings`` (written by src.eval)
say which dataset, head, protocol and post-processing produced it. One row per
(head, protocol, post-processing); Avg8 is shown only when all eight datasets are there. The
published rows (CLIP ViT-B/16, OpenAI weights; sources at ``PUBLISHED``) follow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DATASETS = ("voc21", "context60", "cocoobject", "voc20", "context59", "cocostuff", "cityscapes",
            "ade20k")
HEADERS = ("VOC21", "PC60", "Obj", "VOC20", "PC59", "Stuff", "City", "ADE")
# Published mIoU, ViT-B/16 OpenAI, in the column order above. Sources: the MaskCLIP, SCLIP, ClearCLIP
# and NACLIP rows as tabulated in ResCLIP (Yang et al., CVPR 2025) Tabs. 1-2, committed as
# yvhangyang/ResCLIP figs/main_results_w.png (with background) and figs/main_results_wo.png (without);
# they are the numbers of SCLIP (arXiv 2312.01597), ClearCLIP (arXiv 2407.09465) and NACLIP
# (arXiv 2404.09826), and MaskCLIP's row is the TCL-protocol re-evaluation those papers quote.
# NACLIP + PAMR: the results table of sinahmr/NACLIP README.md (commit 0cac3a6).
PUBLISHED = {
    "MaskCLIP (TCL-protocol re-evaluation)": (38.8, 23.6, 20.6, 74.9, 26.4, 16.4, 12.6, 9.8),
    "SCLIP (paper)": (59.1, 30.4, 30.5, 80.4, 34.2, 22.4, 32.2, 16.1),
    "ClearCLIP (paper)": (51.8, 32.6, 33.0, 80.9, 35.9, 23.9, 30.0, 16.7),
    "NACLIP (paper, no post-processing)": (58.9, 32.2, 33.2, 79.7, 35.2, 23.3, 35.5, 17.4),
    "NACLIP + PAMR (repo default)": (64.07, 34.99, 36.19, 83.03, 38.35, 25.69, 38.27, 19.05),
}
HEAD_NAMES = {"maskclip": "MaskCLIP", "clearclip": "ClearCLIP", "sclip": "SCLIP",
              "naclip": "NACLIP", "naive": "naive"}


def gather(folders: list[Path]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(head, protocol, postproc) → {dataset: mIoU} from every results.json found."""
    rows: dict[tuple[str, str, str], dict[str, float]] = {}
    for folder in folders:
        if not folder.exists():
            raise SystemExit(f"error: {folder} does not exist")
        for path in sorted(folder.rglob("results.json")):
            result = json.loads(path.read_text())
            settings = result.get("settings")
            if not settings or "summary" not in result:
                print(f"warning: {path} has no settings (not a src.eval run); skipped",
                      file=sys.stderr)
                continue
            key = (settings["head"], settings.get("protocol", "none"),
                   settings.get("postproc", "none"))
            rows.setdefault(key, {})[settings["data"]] = float(result["summary"]["mIoU"])
    return rows


def table(rows: dict[tuple[str, str, str], dict[str, float]]) -> str:
    lines = ["| method | " + " | ".join(HEADERS) + " | Avg8 |",
             "|---|" + "---:|" * (len(HEADERS) + 1)]
    for (head, protocol, postproc), scores in sorted(rows.items()):
        name = f"ours: {HEAD_NAMES.get(head, head)} (protocol={protocol}"
        name += ", PAMR)" if postproc == "pamr" else ")"
        cells = [f"{scores[d]:.1f}" if d in scores else "–" for d in DATASETS]
        avg = (f"{sum(scores[d] for d in DATASETS) / len(DATASETS):.1f}"
               if all(d in scores for d in DATASETS) else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {avg} |")
    for name, values in PUBLISHED.items():
        lines.append(f"| published: {name} | " + " | ".join(f"{v:.1f}" for v in values)
                     + f" | {sum(values) / len(values):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="multirun/run folders to gather")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    text = table(gather(args.folders))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
