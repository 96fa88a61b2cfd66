"""``python -m scripts.bench``: run the benchmark (see ``scripts/bench/__init__.py``)."""

from __future__ import annotations

import sys

from scripts.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
