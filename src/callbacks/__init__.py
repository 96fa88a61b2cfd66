"""Lightning callbacks: the prediction writers of src.predict / src.label (``writers``) and the
image | ground truth | prediction panels of src.train and src.eval (``panels``).

The job bookkeeping around the writers (``job.json``, resume, overwrite) is not a callback and
lives in :mod:`src.utils.jobs`.
"""

from __future__ import annotations

from typing import Any


def instantiate_callbacks(callbacks_cfg: Any) -> list:
    """Instantiate every node of a ``callbacks:`` config group that has a ``_target_``."""
    from hydra.utils import instantiate

    return [instantiate(node) for node in (callbacks_cfg or {}).values()
            if node and "_target_" in node]
