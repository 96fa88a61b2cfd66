"""Readers of a layout's listings: split lists, vocabulary (class) files and folder contents."""

from __future__ import annotations

import os
from pathlib import Path

from src.utils.io import TextFileError, read_text_lines

__all__ = ["list_dir", "read_class_lines", "read_split"]


def read_class_lines(path: str | Path) -> list[str]:
    """Class lines of a vocabulary file, stripped, without ``#`` comment lines.

    The reader of :func:`src.prompts.vocabulary.load_vocabulary` itself, so that the class count
    (and hence the valid mask range) matches the text classifier, and with its checks: an empty
    line before the last class, a malformed or repeated class, or bytes that are not UTF-8/UTF-16
    raise a ``ValueError`` naming the file and line (a dropped line would shift every later
    class index).
    """
    from src.prompts.vocabulary import read_class_file  # lazy: src.prompts imports open_clip

    return [line for _, line in read_class_file(path)]


def list_dir(directory: Path) -> set[str]:
    # One listing instead of a stat per sample: fast even for COCO's 118k training images.
    with os.scandir(directory) as entries:
        return {entry.name for entry in entries}


def read_split(path: Path) -> list[str]:
    """Image ids of a split list: the first token of each non-blank line, in order.

    Split lists may hold "id" or "id extra columns". Blank lines are skipped (they shift nothing);
    an id listed twice is an error naming both lines, since it would count the image twice.

    Raises:
        TextFileError: undecodable bytes or a repeated id (names the file and line).
    """
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        name = line.split()[0]
        if name in first_line:
            raise TextFileError(
                f"{path}:{lineno}: id {name!r} on line {lineno} is already listed on line "
                f"{first_line[name]}; the image would count twice. Remove one of the lines.",
                path, lineno)
        first_line[name] = lineno
        ids.append(name)
    return ids
