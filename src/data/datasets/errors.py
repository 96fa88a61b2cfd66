"""The errors a dataset raises about its files, and the messages that show the expected layout.

A missing file or folder is a ``FileNotFoundError`` whose message names the path, prints the
dataset's expected on-disk layout and a hint (including "the real root seems to be this
sub-folder", the most common mistake); an empty split is an :class:`EmptySplitError`; an
undecodable image or mask is an :class:`~src.data.images.UnreadableImageError` (re-exported here,
raised by :class:`~src.data.datasets.base.SegmentationDataset`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.data.images import UnreadableImageError

__all__ = [
    "EmptySplitError",
    "UnreadableImageError",
    "empty_split_error",
    "layout_error",
    "nested_hint",
]


class EmptySplitError(ValueError, FileNotFoundError):
    """A split (a split list file, or a folder) that yields no sample.

    A zero-length dataset would otherwise reach Lightning, which only warns and then evaluates
    nothing. A ``ValueError`` (the split's content is wrong) and, for callers that catch layout
    problems, a ``FileNotFoundError`` (nothing was found where the layout says).
    """


def layout_error(
    dataset: str, what: str, path: Path, root: Path, layout: str, hint: str
) -> FileNotFoundError:
    """A FileNotFoundError naming the missing path and showing the expected layout."""
    return FileNotFoundError(
        f"{dataset}: {what} not found: {path}\n"
        f"Expected layout (data root = {root}):\n{layout.rstrip()}\n"
        f"Hint: {hint}"
    )


def nested_hint(root: Path, children: Sequence[str]) -> str:
    """Points at a sub-folder of ``root`` that looks like the real root (a common mistake)."""
    for child in children:
        if (root / child).is_dir():
            return f" It looks like the dataset root is {root / child}; use that as data.root."
    return ""


def empty_split_error(dataset: str, what: str, source: Path, expected: str, root: Path,
                       layout: str, hint: str) -> EmptySplitError:
    """An EmptySplitError naming the split list or folder, what it should hold and the layout."""
    return EmptySplitError(
        f"{dataset}: {what} {source} holds no {expected}, so the split is empty.\n"
        f"Expected layout (data root = {root}):\n{layout.rstrip()}\n"
        f"Hint: {hint}"
    )
