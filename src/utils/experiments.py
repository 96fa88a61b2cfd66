"""Running several evaluation variants in one process and tabulating them (demo, claims)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from src.utils.config import CONFIG_DIR

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU")


def compose_config(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides, outside ``@hydra.main``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def run_eval_variants(variants: Mapping[str, Sequence[str]], output_root: str | Path,
                      common: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Evaluate each named variant (a list of ``src.eval`` overrides).

    Args:
        variants: name → overrides, e.g. ``{"naive": ["experiment=world_naive"]}``.
        output_root: each variant writes to ``output_root/<name>``.
        common: overrides added to every variant (after its own).

    Returns:
        name → ``{"summary": {...}, "per_class": {...}}`` as returned by ``src.eval.evaluate``.
    """
    from src.eval import evaluate

    results = {}
    for name, overrides in variants.items():
        out = Path(output_root) / name
        cfg = compose_config("eval", [*overrides, *common, f"paths.output_dir={out}"])
        log.info("evaluating %s: %s", name, " ".join(overrides))
        results[name] = evaluate(cfg)
    return results


def results_table(results: Mapping[str, Mapping[str, Any]], labels: Mapping[str, str] | None = None,
                  columns: Sequence[str] = METRIC_COLUMNS) -> str:
    """A markdown table of the summaries (percent, one decimal)."""
    labels = labels or {}
    header = "| method | " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for name, result in results.items():
        summary = result["summary"]
        cells = [f"{summary[c]:.1f}" if c in summary else "—" for c in columns]
        lines.append(f"| {labels.get(name, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
