"""Seen/unseen class splits of the transductive zero-shot setting (MaskCLIP+, SPNet/ZS3Net splits).

Unseen classes are given by their *dataset* names (the text before ``:`` in a vocabulary file),
not by index, so that a split stays correct whatever vocabulary order it is resolved against;
:func:`unseen_indices` turns them into class indices of a concrete vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ZERO_SHOT_UNSEEN", "unseen_indices"]

_VOC_UNSEEN = ("pottedplant", "sheep", "sofa", "train", "tvmonitor")

#: Dataset names of the unseen classes, keyed by vocabulary name.
ZERO_SHOT_UNSEEN: dict[str, tuple[str, ...]] = {
    "voc20": _VOC_UNSEEN,
    "voc21": _VOC_UNSEEN,
    "context60": (
        "aeroplane", "bird", "boat", "cat", "cow",
        "fence", "keyboard", "motorbike", "sofa", "tvmonitor",
    ),
    "cocostuff": (
        "cow", "giraffe", "suitcase", "frisbee", "skateboard",
        "carrot", "scissors", "cardboard", "clouds", "grass",
        "playingfield", "river", "road", "tree", "wall-concrete",
    ),
    # The offline world (src/data/world.py): one stuff and two thing classes, 3 of 12.
    "world": ("water", "kite", "ring"),
}


def unseen_indices(split_name: str, dataset_names: Sequence[str]) -> list[int]:
    """Resolves a zero-shot split to class indices of a vocabulary.

    Args:
        split_name: A key of :data:`ZERO_SHOT_UNSEEN` (e.g. ``'voc20'``).
        dataset_names: Dataset class names in class-index order (the part before ``:`` of each
            vocabulary line).

    Returns:
        Sorted indices of the unseen classes in ``dataset_names``.

    Raises:
        ValueError: If ``split_name`` is unknown, or an unseen class is not in ``dataset_names``
            (usually the split was paired with the wrong vocabulary).
    """
    if split_name not in ZERO_SHOT_UNSEEN:
        raise ValueError(
            f"Unknown zero-shot split {split_name!r}; known splits: {sorted(ZERO_SHOT_UNSEEN)}."
        )
    position = {name: i for i, name in enumerate(dataset_names)}
    missing = [name for name in ZERO_SHOT_UNSEEN[split_name] if name not in position]
    if missing:
        raise ValueError(
            f"Zero-shot split {split_name!r}: unseen class(es) {missing} are not in the "
            f"vocabulary's dataset names ({len(dataset_names)} classes, first ones: "
            f"{list(dataset_names[:5])}). Is the split paired with the right vocabulary?"
        )
    return sorted(position[name] for name in ZERO_SHOT_UNSEEN[split_name])
