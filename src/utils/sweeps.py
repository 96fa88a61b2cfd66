"""The table of a finished (or running) Hydra sweep, built from its run folders.

``python -m src.eval -m ...`` and ``python -m src.train -m ...`` leave one folder per job under
the sweep folder (``<sweep>/<job number>/``), each with ``.hydra/overrides.yaml`` (what the job
changed), ``status.json`` (:mod:`src.utils.runs`) and its metrics file. :func:`write_summary`
turns them into ``summary.csv`` and ``summary.md`` in the sweep folder: one row per job, the
overrides that vary between jobs as columns, the main metrics, the state and the run folder.
Everything is read from disk, so the table is the same whichever launcher ran the jobs (basic,
joblib, submitit/SLURM: jobs in other processes or on other machines).

The sweep callback (:class:`src.callbacks.sweep_summary.SweepSummary`) calls it after every job
and at the end of the sweep; ``python scripts/sweep_table.py <sweep folder>`` rebuilds it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from src.utils.io import atomic_write_bytes
from src.utils.runs import read_status

#: The metric columns, in order: the main split's mIoU, seen, unseen, hIoU; the corruption mean.
METRICS = ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "corruption_mean")


#: Files that mark a run folder (besides Hydra's ``.hydra/overrides.yaml``).
RUN_MARKERS = ("status.json", "results.json", "metrics.json")


def job_folders(sweep_dir: str | Path) -> list[Path]:
    """The run folders under ``sweep_dir`` (those with ``.hydra/overrides.yaml``, a status or a
    metrics file; itself included), in job-number order."""
    sweep_dir = Path(sweep_dir)
    found = {p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")}
    for marker in RUN_MARKERS:
        found |= {p.parent for p in sweep_dir.glob(f"**/{marker}")}

    def order(path: Path) -> tuple:
        rel = path.relative_to(sweep_dir).parts
        return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in rel)

    return sorted(found, key=order)


def completed_runs(folder: str | Path, metrics_file: str) -> list[tuple[Path, dict[str, Any]]]:
    """(run folder, its metrics file's content) for every run under ``folder`` that completed;
    a run whose status says otherwise is skipped with a warning (tables built on this, such as
    scripts/bench8_table.py, never read a failed run's leftovers)."""
    import sys

    out = []
    for job_dir in job_folders(folder):
        status = read_status(job_dir)
        if status is not None and status.get("state") != "completed":
            print(f"warning: {job_dir} is {status.get('state')} "
                  f"({status.get('error') or 'no error recorded'}); skipped", file=sys.stderr)
            continue
        try:
            out.append((job_dir, json.loads((job_dir / metrics_file).read_text("utf-8"))))
        except (OSError, ValueError):
            continue
    return out


def read_overrides(job_dir: Path) -> dict[str, str]:
    """``key=value`` overrides of a job, from the list Hydra saved (``+``/``~`` kept in the key)."""
    from omegaconf import OmegaConf

    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():  # a run made by calling the entry point's function
        return {}
    items = OmegaConf.to_container(OmegaConf.load(path))
    out: dict[str, str] = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def main_metrics(job_dir: Path, status: dict[str, Any] | None) -> dict[str, Any]:
    """The metric columns of one job from its metrics file (src.eval ``results.json``:
    ``summary`` and ``corruptions``; src.train ``metrics.json``: ``test/*``, else ``val/*``).

    Returns:
        ``{column: value}`` with ``split`` (``test``, ``val``) when it is known.
    """
    name = (status or {}).get("metrics_file")
    candidates = [name] if name else ["results.json", "metrics.json"]
    for candidate in candidates:
        path = job_dir / candidate
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "summary" in data:  # src.eval
            row: dict[str, Any] = {k: data["summary"].get(k) for k in METRICS[:4]}
            table = (data.get("corruptions") or {}).get("mIoU") or {}
            values = [v for severities in table.values() for v in severities.values()]
            row["corruption_mean"] = sum(values) / len(values) if values else None
            row["split"] = (data.get("settings") or {}).get("split", "test")
            return row
        for split in ("test", "val"):  # src.train
            if f"{split}/mIoU" in data:
                row = {k: data.get(f"{split}/{k}") for k in METRICS[:4]}
                row["split"] = split
                return row
    return {}


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One record per job: ``job``, ``state``, ``overrides``, the metric columns, ``error``,
    ``run_dir`` (relative to the sweep folder)."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for job_dir in job_folders(sweep_dir):
        status = read_status(job_dir)
        metrics = main_metrics(job_dir, status)
        state = (status or {}).get("state")
        if state is None:  # a run from before status files, or one that died before writing
            state = "completed" if metrics else "unknown"
        rows.append({"job": str(job_dir.relative_to(sweep_dir)), "state": state,
                     "overrides": read_overrides(job_dir), **metrics,
                     "error": (status or {}).get("error", ""),
                     "run_dir": str(job_dir.relative_to(sweep_dir))})
    return rows


def varying_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value differs between jobs (or is missing from some), in the order
    they first appear."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row["overrides"] if k not in keys]
    return [k for k in keys if len({row["overrides"].get(k) for row in rows}) > 1
            or len(rows) == 1]


def table_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells: job, the varying overrides, the metrics present, state, run folder,
    and the error when a job has one. A failed job's metric cells say ``failed``."""
    keys = varying_keys(rows)
    metrics = [m for m in METRICS if any(row.get(m) is not None for row in rows)]
    errors = any(row.get("error") for row in rows)
    header = ["job", *keys, *metrics, "split", "state", "run_dir", *(["error"] if errors else [])]
    cells = []
    for row in rows:
        values = []
        for metric in metrics:
            value = row.get(metric)
            if row["state"] != "completed":
                values.append(row["state"])
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                values.append("")
            else:
                values.append(f"{float(value):.2f}")
        cells.append([row["job"], *(row["overrides"].get(k, "") for k in keys), *values,
                      row.get("split", ""), row["state"], row["run_dir"],
                      *([" ".join(str(row.get("error", "")).split())] if errors else [])])
    return header, cells


def write_summary(sweep_dir: str | Path) -> tuple[Path, Path] | None:
    """Write ``summary.csv`` and ``summary.md`` in ``sweep_dir`` (atomically); None when the
    folder holds no job yet."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    if not rows:
        return None
    header, cells = table_rows(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(cells)
    csv_path, md_path = sweep_dir / "summary.csv", sweep_dir / "summary.md"
    atomic_write_bytes(csv_path, buffer.getvalue().encode("utf-8"))
    failed = sum(row["state"] != "completed" for row in rows)

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"Sweep `{sweep_dir}`: {len(rows)} jobs, {len(rows) - failed} completed"
             + (f", {failed} not completed" if failed else "") + ". Metrics in %.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in cells]
    atomic_write_bytes(md_path, ("\n".join(lines) + "\n").encode("utf-8"))
    return csv_path, md_path
