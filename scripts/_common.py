"""Command-line helpers shared by the ``scripts/convert_*.py`` dataset converters."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

TaskT = TypeVar("TaskT", bound=Sequence[Any])


def fail(msg: str) -> NoReturn:
    """Stop the converter with ``error: <msg>`` on stderr and exit status 1."""
    raise SystemExit(f"error: {msg}")


def warn(msg: str) -> None:
    """Print ``warning: <msg>`` to stderr."""
    print(f"warning: {msg}", file=sys.stderr)


def add_common_args(parser: argparse.ArgumentParser, outputs: str = "labels") -> None:
    """Add the ``--nproc`` and ``--overwrite`` options every converter takes.

    Args:
        parser: The converter's parser.
        outputs: What the converter writes, for the ``--overwrite`` help ("labels", "files").
    """
    parser.add_argument(
        "--nproc", type=int, default=1, help="number of worker processes (default: %(default)s)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"re-convert {outputs} whose output already exists",
    )


def pending(tasks: list[TaskT], overwrite: bool) -> list[TaskT]:
    """The tasks still to run: all with ``overwrite``, else those whose output is missing.

    Args:
        tasks: Converter tasks whose last element is the output path.
        overwrite: Whether existing outputs are converted again.
    """
    return tasks if overwrite else [t for t in tasks if not os.path.exists(t[-1])]
