"""Tests for the atomic writers and ``parallel_map`` in ``src/utils/io.py``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.utils.io import (
    atomic_open,
    atomic_torch_save,
    atomic_write_bytes,
    parallel_map,
    read_lines,
    save_png_atomic,
    write_lines_atomic,
)

OLD_MTIME_NS = 1_000_000_000 * 10**9  # 2001-09-09


class _Boom(RuntimeError):
    pass


class _HalfWrittenImage:
    """Stands in for a PIL image whose ``save`` writes part of the file, then fails."""

    def save(self, f, format=None):  # noqa: A002 - PIL's signature
        f.write(b"\x89PNG\r\n\x1a\n partial")
        f.flush()
        raise _Boom("disk on fire")


class _Unpicklable:
    def __reduce__(self):
        raise _Boom("cannot pickle")


def _square(x: int) -> int:
    return x * x


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_bytes_writes_with_umask_permissions(tmp_path):
    dst = tmp_path / "sub" / "data.bin"
    atomic_write_bytes(dst, b"abc")
    assert dst.read_bytes() == b"abc"
    assert _listing(dst.parent) == ["data.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o666 & ~umask


def test_save_png_atomic_round_trip(tmp_path):
    dst = tmp_path / "a" / "b.png"
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    save_png_atomic(Image.fromarray(arr), dst)
    with Image.open(dst) as img:
        assert np.array_equal(np.array(img), arr)
    assert _listing(dst.parent) == ["b.png"]


@pytest.mark.parametrize("existing", [False, True])
def test_failed_png_write_leaves_no_temp_and_no_partial_file(tmp_path, existing):
    dst = tmp_path / "label.png"
    if existing:
        dst.write_bytes(b"old content")
    with pytest.raises(_Boom):
        save_png_atomic(_HalfWrittenImage(), dst)  # type: ignore[arg-type]
    if existing:
        assert dst.read_bytes() == b"old content"
        assert _listing(tmp_path) == ["label.png"]
    else:
        assert _listing(tmp_path) == []


@pytest.mark.parametrize("existing", [False, True])
def test_failed_torch_save_leaves_no_temp_and_no_partial_file(tmp_path, existing):
    dst = tmp_path / "cache.pt"
    if existing:
        atomic_torch_save({"x": torch.ones(2)}, dst)
    with pytest.raises(_Boom):
        atomic_torch_save({"x": torch.zeros(1000), "bad": _Unpicklable()}, dst)
    if existing:
        assert _listing(tmp_path) == ["cache.pt"]
        assert torch.equal(torch.load(dst, weights_only=True)["x"], torch.ones(2))
    else:
        assert _listing(tmp_path) == []


def test_atomic_torch_save_round_trip(tmp_path):
    dst = tmp_path / "nested" / "obj.pt"
    atomic_torch_save({"t": torch.arange(3), "names": ["a", "b"]}, dst)
    loaded = torch.load(dst, weights_only=True)
    assert torch.equal(loaded["t"], torch.arange(3)) and loaded["names"] == ["a", "b"]
    assert _listing(dst.parent) == ["obj.pt"]


def test_atomic_open_text_mode_and_bad_mode(tmp_path):
    dst = tmp_path / "t.txt"
    with atomic_open(dst, "w", encoding="utf-8") as f:
        f.write("héllo\n")
        assert not dst.exists()  # nothing visible until the block ends
    assert dst.read_text(encoding="utf-8") == "héllo\n"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(dst, "a"):  # type: ignore[arg-type]
            pass


def test_write_lines_atomic_skips_unchanged_content(tmp_path):
    path = tmp_path / "ImageSets" / "train.txt"
    assert write_lines_atomic(path, ["b", "a"]) is True
    assert path.read_text() == "b\na\n"
    os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    assert write_lines_atomic(path, iter(["b", "a"])) is False
    assert path.stat().st_mtime_ns == OLD_MTIME_NS
    assert write_lines_atomic(path, ["a", "b"]) is True
    assert path.read_text() == "a\nb\n"
    assert path.stat().st_mtime_ns != OLD_MTIME_NS
    assert _listing(path.parent) == ["train.txt"]


def test_read_lines_strips_and_skips_blank_lines(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("  2008_000002 \n\n2008_000003\n   \n2008_000007 1\n")
    assert read_lines(path) == ["2008_000002", "2008_000003", "2008_000007 1"]


@pytest.mark.parametrize("n", [0, 1, 5, 103])
def test_parallel_map_serial_and_pool_agree(n):
    tasks = list(range(n))
    expected = [x * x for x in tasks]
    assert parallel_map(_square, tasks, 1, "serial") == expected
    assert parallel_map(_square, iter(tasks), 2, "pool", unit="img", max_chunksize=4) == expected
