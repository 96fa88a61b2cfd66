"""Class vocabularies: dataset class names, their prompt names and synonyms.

File format (one class per line, in class-index order)::

    # a comment line: its first non-blank character is '#'
    <dataset name>: <prompt name>[, <synonym>, ...]
    pottedplant: potted plant
    sofa: sofa, couch
    cat

A line without a colon (``cat``) is its own prompt name. Every non-comment line is one class, in
order, so class index = position among the non-comment lines (a mask value and the text
classifier's column refer to the same line). Because a dropped line would silently shift every
later class, the reader never drops one: an empty line before the last class, an empty prompt
name or synonym (``sofa: sofa,, couch``) and a class listed twice are errors naming the file and
line. Only empty lines after the last class (an editor's trailing blank line) are ignored - they
cannot shift anything. ``#`` starts a comment only at the start of a line; in a class line it is
part of the name. Files are UTF-8 (with or without a byte-order mark) or UTF-16 with a BOM; see
:func:`src.utils.io.read_text_lines`.

Every synonym is its own text query; the teacher max-merges a class's queries after the softmax
(as SCLIP does), and the single embedding a class needs elsewhere is the renormalised mean of its
synonyms' embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from src.utils.io import TextFileError, read_text_lines

VOCAB_DIR = Path(__file__).parent / "vocab"


@dataclass(frozen=True)
class ClassVocabulary:
    """An ordered list of classes, each with one or more text queries.

    Attributes:
        names: dataset class names, length C (what metrics and tables show).
        queries: per class, the prompt names (first = main name, then synonyms).
        source: where the vocabulary came from (file path or ``"<list>"``), for messages.
    """

    names: tuple[str, ...]
    queries: tuple[tuple[str, ...], ...]
    source: str = "<list>"

    def __post_init__(self) -> None:
        if len(self.names) != len(self.queries):
            raise ValueError("names and queries must have the same length")
        if not self.names:
            raise ValueError(f"vocabulary {self.source} has no classes")
        for name, qs in zip(self.names, self.queries):
            if not qs or any(not q for q in qs):
                raise ValueError(f"class {name!r} in {self.source} has an empty prompt name")
        duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicates:
            raise ValueError(f"vocabulary {self.source} lists {duplicates} more than once; "
                             "each class must appear once (put synonyms on one line: "
                             "'sofa: sofa, couch')")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def flat_queries(self) -> list[str]:
        """All queries, class by class: length Q = sum of synonyms per class."""
        return [q for qs in self.queries for q in qs]

    @property
    def query_to_class(self) -> torch.Tensor:
        """Q long tensor mapping each flat query to its class index."""
        return torch.tensor(
            [c for c, qs in enumerate(self.queries) for _ in qs], dtype=torch.long
        )

    @property
    def has_synonyms(self) -> bool:
        return any(len(qs) > 1 for qs in self.queries)

    def index(self, name: str) -> int:
        """Class index of a dataset name (or of a prompt name, as a fallback)."""
        if name in self.names:
            return self.names.index(name)
        for c, qs in enumerate(self.queries):
            if name in qs:
                return c
        raise ValueError(f"class {name!r} is not in vocabulary {self.source}: {list(self.names)}")

    @classmethod
    def from_names(cls, names: Sequence[str], source: str = "<list>") -> "ClassVocabulary":
        """Build from plain strings; each string may itself be a vocabulary line.

        Raises:
            ValueError: an empty entry or a name listed twice (naming the entry numbers), so that
                no entry is dropped and no later class index shifts.
        """
        entries = check_class_list(names, source)
        parsed = [_parse_line(n, f"{source} entry {i + 1}") for i, n in enumerate(entries)]
        return cls(tuple(p[0] for p in parsed), tuple(p[1] for p in parsed), source)

    @classmethod
    def from_file(cls, path: str | Path) -> "ClassVocabulary":
        """Read a vocabulary file (format in the module docstring).

        Raises:
            TextFileError (a ValueError): the file is not UTF-8/UTF-16 text, or a line is empty,
                malformed or a repeated class; the message names the file and line.
        """
        names, queries = [], []
        for lineno, line in read_class_file(path):
            name, qs = _parse_line(line, f"{path}:{lineno}")
            names.append(name)
            queries.append(qs)
        return cls(tuple(names), tuple(queries), str(path))


def read_class_file(path: str | Path) -> list[tuple[int, str]]:
    """The class lines of a vocabulary / ``classes.txt`` file, each with its 1-based line number.

    One reader for every class file (the text classifier's vocabulary and a folder dataset's
    ``classes.txt``), so that the class count, and hence the valid mask range, always agrees.

    Returns:
        ``[(line number, stripped line), ...]`` for every non-comment line, in file order.

    Raises:
        TextFileError: undecodable bytes, an empty line before the last class, a malformed line
            or a class listed twice (naming both lines); every message starts ``<file>:<line>:``.
    """
    lines = read_text_lines(path)
    content = [i for i, raw in enumerate(lines) if raw.strip() and not _is_comment(raw)]
    last = content[-1] if content else -1
    out: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for i, raw in enumerate(lines[: last + 1]):
        lineno, line = i + 1, raw.strip()
        if not line:
            raise TextFileError(
                f"{path}:{lineno}: line {lineno} is empty. Every line of a class file is one "
                f"class, in order, so an empty line would shift every later class index. Remove "
                f"it, or write the class that belongs there ('#' starts a comment line).",
                path, lineno)
        if _is_comment(line):
            continue
        name, _ = _parse_line(line, f"{path}:{lineno}")
        if name in first_line:
            raise TextFileError(
                f"{path}:{lineno}: class {name!r} on line {lineno} is already listed on line "
                f"{first_line[name]}. Each class must appear once (put synonyms on one line: "
                "'sofa: sofa, couch').", path, lineno)
        first_line[name] = lineno
        out.append((lineno, line))
    return out


def split_class_list(text: str, source: str | None = None) -> list[str]:
    """``"cat,dog,red car"`` (a ``classes=`` value) → ``["cat", "dog", "red car"]``.

    Raises:
        ValueError: an empty entry (``cat,,dog``, a leading or trailing comma) or a repeated
            name, naming the entry; dropping it would shift every later class index.
    """
    return check_class_list(text.split(","), source or f"classes={text}")


def check_class_list(names: Sequence[str], source: str = "<list>") -> list[str]:
    """Strip the entries of a class list and reject empty and repeated ones.

    Args:
        names: the entries, one class each (an entry may be a vocabulary line ``"a: b, c"``).
        source: how the user wrote the list (``"classes=a,,b"``), for the message.

    Returns:
        The stripped entries, same length and order.

    Raises:
        ValueError: entry k is empty, or entry k repeats entry j (both numbers named).
    """
    entries = [str(n).strip() for n in names]
    first: dict[str, int] = {}
    for k, entry in enumerate(entries, start=1):
        if not entry:
            raise ValueError(
                f"{source}: entry {k} of {len(entries)} is empty (two commas in a row, or a comma "
                "at the start or end?). Every entry is one class, in order; remove the empty one.")
        name = entry.partition(":")[0].strip() if ":" in entry else entry.split(",")[0].strip()
        if name in first:
            raise ValueError(f"{source}: class {name!r} is listed more than once (entries "
                             f"{first[name]} and {k}); each class must appear once.")
        first[name] = k
    return entries


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _parse_line(line: str, where: str) -> tuple[str, tuple[str, ...]]:
    """``"<name>: <prompt>[, <synonym>...]"`` or ``"<name>[, <synonym>...]"`` → (name, queries).

    ``where`` (``"file:line"`` or ``"classes= entry 2"``) prefixes every error message.
    """
    line = line.strip()
    if ":" in line:
        name, _, rest = line.partition(":")
        name = name.strip()
        queries = tuple(q.strip() for q in rest.split(","))
        if not name or not any(queries):
            raise TextFileError(
                f"{where}: expected '<dataset name>: <prompt name>[, <synonym>...]', "
                f"got {line!r}", *_path_line(where))
    else:
        queries = tuple(q.strip() for q in line.split(","))
        name = queries[0]
        if not line:
            raise TextFileError(f"{where}: empty class line", *_path_line(where))
    if not all(queries):
        raise TextFileError(
            f"{where}: empty prompt name or synonym in {line!r} (two commas in a row, or a comma "
            "at the start or end?); remove the extra comma.", *_path_line(where))
    return name, queries


def _path_line(where: str) -> tuple[str | None, int | None]:
    """``"file:12"`` → ``("file", 12)`` for :class:`TextFileError`'s attributes."""
    path, _, line = where.rpartition(":")
    return (path, int(line)) if path and line.isdigit() else (None, None)


def available_vocabularies() -> list[str]:
    """Names of the vocabulary files shipped with the package."""
    return sorted(p.stem for p in VOCAB_DIR.glob("*.txt"))


def load_vocabulary(spec: str | Path | Sequence[str], source: str = "<list>") -> ClassVocabulary:
    """Resolve a vocabulary from a file path, a shipped name (``voc20``) or a list of names.

    Args:
        spec: the file, the shipped name, or the class list (one class per entry).
        source: how the user gave a list (e.g. ``"classes="``), for messages.

    Raises:
        FileNotFoundError: when ``spec`` is neither an existing file nor a shipped name.
        ValueError: an empty, malformed or repeated class (naming the file and line, or the
            list entry), or a file that is not UTF-8/UTF-16 text.
    """
    if isinstance(spec, ClassVocabulary):
        return spec
    if not isinstance(spec, (str, Path)):
        return ClassVocabulary.from_names(list(spec), source)
    path = Path(spec)
    if path.is_file():
        return ClassVocabulary.from_file(path)
    shipped = VOCAB_DIR / f"{spec}.txt"
    if shipped.is_file():
        return ClassVocabulary.from_file(shipped)
    raise FileNotFoundError(
        f"vocabulary {str(spec)!r} is neither a file nor a shipped vocabulary. "
        f"Shipped: {available_vocabularies()}. A vocabulary file has one class per line: "
        "'<dataset name>: <prompt name>[, <synonym>, ...]'."
    )
