"""Builders that turn a composed config into objects, shared by every entry point.

Entry points (``src.eval``, ``src.train``, ``src.predict``, ``src.label``) import from here, never
from each other.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from src.utils.config import to_plain


def build_teacher(cfg: DictConfig):
    """Instantiate the teacher with the composed refinements and inference settings.

    Raises:
        WeightsUnavailableError, ValueError, FileNotFoundError: unwrapped from Hydra's
            InstantiationException, so the user sees the one message that names the weights
            file and what to pass instead.
    """
    from hydra.errors import InstantiationException

    from src.models.clip_loading import WeightsUnavailableError

    try:
        return instantiate(cfg.teacher, refine=to_plain(cfg.refine),
                           inference=to_plain(cfg.inference),
                           postproc=to_plain(cfg.get("postproc") or {}), _convert_="all")
    except InstantiationException as err:
        # Missing weights and unusable checkpoint files carry their own message (the file, what
        # it seems to be, what to pass instead): show it, not Hydra's wrapper.
        if isinstance(err.__cause__, (WeightsUnavailableError, ValueError, FileNotFoundError)):
            raise err.__cause__ from None
        raise
