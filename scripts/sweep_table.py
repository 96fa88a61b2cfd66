#!/usr/bin/env python
"""Rebuild the table of a sweep from its run folders: summary.csv and summary.md.

    python scripts/sweep_table.py logs/eval/multiruns/2026-12-03_10-00-00

The sweep callback writes the same table after every job and at the end of the sweep
(src/callbacks/sweep_summary.py); this command is for a sweep whose jobs finished elsewhere
(SLURM), were re-run by hand, or ended before the callback could write it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    from src.utils.sweeps import write_summary

    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a folder; pass the sweep folder a -m run "
                     "printed (logs/<task>/multiruns/<time>)")
    written = write_summary(args.sweep_dir)
    if written is None:
        parser.error(f"{args.sweep_dir} holds no job folder (none with .hydra/overrides.yaml)")
    print(written[1].read_text(encoding="utf-8"))
    print(f"wrote {written[0]} and {written[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
