#!/usr/bin/env python
"""Gather src.eval runs of the 8-benchmark protocol into one markdown table, beside the peers.

    python -m src.eval -m experiment=bench8 \\
        data=voc21,context60,cocoobject,voc20,context59,cocostuff,cityscapes,ade20k \\
        teacher/head=maskclip,clearclip,sclip,naclip
    python -m src.eval -m experiment=bench8 protocol=scclip teacher/head=scclip \\
        data=voc21,context60,cocoobject,voc20,context59,cocostuff,cityscapes,ade20k
    python scripts/bench8_table.py logs/bench8/multiruns/<time> [--out bench8.md]

Every ``results.json`` under the given folders is read; its ``settings`` (written by src.eval)
say which dataset, head, protocol and post-processing produced it. One row per
(head, protocol, post-processing); Avg8 is shown only when all eight datasets are there. The
published rows (CLIP ViT-B/16, OpenAI weights; sources at ``PUBLISHED``) follow.
"""

from __future__ import annotations

import argparse
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
# ResCLIP (on NACLIP, no post-processing): its own row in the same ResCLIP Tabs. 1-2 (above).
# ProxyCLIP (DINO ViT-B/8 as the proxy): the ProxyCLIP row of Trident's main table, committed as
# YuHengsss/Trident assets/data_result.png (a93b346), identical to the row in CorrCLIP's arXiv-v1
# table, zdk258/CorrCLIP images/result.png (b54c8a0).
# SC-CLIP: SECONDARY and unverified - the row as RF-CLIP (AAAI 2026, arXiv 2511.16170) tabulates it,
# read from third-party notes on that paper; neither SC-CLIP's repo nor its README carries numbers,
# and the arXiv paper (2411.15869) was not checked. Its mean is the 43.9 quoted for SC-CLIP.
PUBLISHED = {
    "MaskCLIP (TCL-protocol re-evaluation)": (38.8, 23.6, 20.6, 74.9, 26.4, 16.4, 12.6, 9.8),
    "SCLIP (paper)": (59.1, 30.4, 30.5, 80.4, 34.2, 22.4, 32.2, 16.1),
    "ClearCLIP (paper)": (51.8, 32.6, 33.0, 80.9, 35.9, 23.9, 30.0, 16.7),
    "NACLIP (paper, no post-processing)": (58.9, 32.2, 33.2, 79.7, 35.2, 23.3, 35.5, 17.4),
    "NACLIP + PAMR (repo default)": (64.07, 34.99, 36.19, 83.03, 38.35, 25.69, 38.27, 19.05),
    "ResCLIP on NACLIP (paper)": (61.1, 33.5, 35.0, 86.0, 36.8, 24.7, 35.9, 18.0),
    "ProxyCLIP, DINO ViT-B/8 (Trident's and CorrCLIP's tables)":
        (61.3, 35.3, 37.5, 80.3, 39.1, 26.5, 38.1, 20.2),
    "SC-CLIP (as quoted by RF-CLIP; unverified)": (64.6, 36.8, 37.7, 84.3, 40.1, 26.6, 41.0, 20.1),
}
HEAD_NAMES = {"maskclip": "MaskCLIP", "clearclip": "ClearCLIP", "sclip": "SCLIP",
              "naclip": "NACLIP", "naive": "naive", "scclip": "SC-CLIP", "resclip": "ResCLIP",
              "proxyclip": "ProxyCLIP"}


def gather(folders: list[Path]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(head, protocol, postproc) → {dataset: mIoU} from every completed run's results.json
    (src.utils.sweeps.completed_runs: failed runs are skipped with a warning)."""
    from src.utils.sweeps import completed_runs

    rows: dict[tuple[str, str, str], dict[str, float]] = {}
    for folder in folders:
        if not folder.exists():
            raise SystemExit(f"error: {folder} does not exist")
        for path, result in completed_runs(folder, "results.json"):  # the sweep tables' reader
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
