"""Builders that turn a composed config into objects, shared by every entry point.

Entry points (``src.eval``, ``src.train``, ``src.predict``, ``src.label``) import from here, never
from each other.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from src.utils.config import to_plain


def teacher_inference(cfg: DictConfig, pseudo_labels: bool = False) -> dict:
    """The inference settings the teacher runs with: ``cfg.inference``, and for MaskCLIP+
    pseudo-labels the head's ``teacher.pseudo_label_inference`` on top of it.

    SC-CLIP's and ResCLIP's statistics (LOF outliers, attention thresholds, the first-pass
    scores) are defined per 224-px window in their own protocol, so their head configs label a
    training crop with 224/112 windows; ``teacher.pseudo_label_inference=null`` labels the whole
    crop with the run's ``inference`` instead. Evaluation always uses ``inference`` as named.
    """
    inference = dict(to_plain(cfg.inference))
    override = to_plain(cfg.teacher.get("pseudo_label_inference"))
    if pseudo_labels and override:
        unknown = sorted(set(override) - set(inference))
        if unknown:
            raise ValueError(f"teacher.pseudo_label_inference: unknown keys {unknown}; it takes "
                             f"inference keys ({sorted(inference)})")
        inference.update(override)
    return inference


def build_teacher(cfg: DictConfig, pseudo_labels: bool = False):
    """Instantiate the teacher with the composed refinements and inference settings.

    ``pseudo_labels=True`` (MaskCLIP+ training) applies the head's
    ``teacher.pseudo_label_inference`` (:func:`teacher_inference`).

    Raises:
        WeightsUnavailableError, ValueError, FileNotFoundError: unwrapped from Hydra's
            InstantiationException, so the user sees the one message that names the weights
            file and what to pass instead.
    """
    from hydra.errors import InstantiationException

    from src.models.clip_loading import WeightsUnavailableError

    try:
        teacher = {k: v for k, v in to_plain(cfg.teacher).items()
                   if k != "pseudo_label_inference"}
        return instantiate(teacher, refine=to_plain(cfg.refine),
                           inference=teacher_inference(cfg, pseudo_labels),
                           postproc=to_plain(cfg.get("postproc") or {}), _convert_="all")
    except InstantiationException as err:
        # Missing weights and unusable checkpoint files carry their own message (the file, what
        # it seems to be, what to pass instead): show it, not Hydra's wrapper.
        if isinstance(err.__cause__, (WeightsUnavailableError, ValueError, FileNotFoundError)):
            raise err.__cause__ from None
        raise
