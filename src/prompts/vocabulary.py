"""Class vocabularies: dataset class names, their prompt names and synonyms.

File format (one class per line, in class-index order)::

    <dataset name>: <prompt name>[, <synonym>, ...]
    pottedplant: potted plant
    sofa: sofa, couch
    cat                      # no colon: the name is also the prompt

Blank lines and lines starting with ``#`` are skipped. Every synonym is its own text query;
the teacher max-merges a class's queries after the softmax (as SCLIP does), and the single
embedding a class needs elsewhere is the renormalised mean of its synonyms' embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

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
        """Build from plain strings; each string may itself be a vocabulary line."""
        parsed = [_parse_line(str(n), source, i + 1) for i, n in enumerate(names)]
        return cls(tuple(p[0] for p in parsed), tuple(p[1] for p in parsed), source)

    @classmethod
    def from_file(cls, path: str | Path) -> "ClassVocabulary":
        path = Path(path)
        names, queries = [], []
        for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, qs = _parse_line(line, str(path), lineno)
            names.append(name)
            queries.append(qs)
        return cls(tuple(names), tuple(queries), str(path))


def _parse_line(line: str, source: str, lineno: int) -> tuple[str, tuple[str, ...]]:
    if ":" in line:
        name, _, rest = line.partition(":")
        name = name.strip()
        queries = tuple(q.strip() for q in rest.split(",") if q.strip())
        if not name or not queries:
            raise ValueError(
                f"{source}:{lineno}: expected '<dataset name>: <prompt name>[, <synonym>...]', "
                f"got {line!r}"
            )
        return name, queries
    queries = tuple(q.strip() for q in line.split(",") if q.strip())
    if not queries:
        raise ValueError(f"{source}:{lineno}: empty class line")
    return queries[0], queries


def available_vocabularies() -> list[str]:
    """Names of the vocabulary files shipped with the package."""
    return sorted(p.stem for p in VOCAB_DIR.glob("*.txt"))


def load_vocabulary(spec: str | Path | Sequence[str]) -> ClassVocabulary:
    """Resolve a vocabulary from a file path, a shipped name (``voc20``) or a list of names.

    Raises:
        FileNotFoundError: when ``spec`` is neither an existing file nor a shipped name.
    """
    if isinstance(spec, ClassVocabulary):
        return spec
    if not isinstance(spec, (str, Path)):
        return ClassVocabulary.from_names(list(spec))
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
