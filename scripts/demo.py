"""`make demo`: generate a small dataset in the generic folder layout and evaluate MaskCLIP on it.

Until the offline world (a procedural dataset plus a CLIP pre-trained on it) lands, the demo runs
the full training-free evaluation path (datamodule → teacher → refinements → metrics → logger) on
a generated folder dataset with a tiny random-init CLIP. Its mIoU is therefore near chance: the
point is that every stage runs end to end, offline, on CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.data.fixtures import write_folder_fixture  # noqa: E402

CLASSES = ("red", "green", "blue", "yellow", "sky", "grass")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT / "data"), help="where to write the data")
    parser.add_argument("--images", type=int, default=8, help="number of generated images")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for src.eval")
    args = parser.parse_args(argv)

    folder = Path(args.data_dir) / "demo_folder"
    if not (folder / "classes.txt").is_file():
        write_folder_fixture(folder, class_names=CLASSES, n=args.images, size=(96, 128), seed=0)
        print(f"wrote {args.images} images in the folder layout to {folder}")
    cmd = [sys.executable, "-m", "src.eval", "data=folder", f"data.root={folder}",
           "teacher=tiny", "refine=kspd", "logger=csv", "trainer.accelerator=cpu",
           "task_name=demo", *args.overrides]
    print("running:", " ".join(cmd[1:]), flush=True)
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
