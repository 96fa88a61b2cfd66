"""File and process helpers shared by the dataset converters and the label-export tool.

Atomic writers: every writer here creates a temp file in the destination's directory (so that
``os.replace`` stays on one file system), writes it completely, gives it the permissions a plain
``open(path, "w")`` would (``0o666`` minus the umask) and only then moves it over the
destination with ``os.replace``. A reader therefore sees either the old file or the complete
new one, never a partial write; if the writer raises, the temp file is removed and the
destination is left as it was.

This module imports only the standard library, ``tqdm`` and (lazily, in
:func:`atomic_torch_save`) ``torch``, so command-line tools stay quick to start.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import Pool
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, Literal, TypeVar

from tqdm import tqdm

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "atomic_open",
    "atomic_torch_save",
    "atomic_write_bytes",
    "parallel_map",
    "TextFileError",
    "read_lines",
    "read_text_lines",
    "save_png_atomic",
    "write_lines_atomic",
]

T = TypeVar("T")
R = TypeVar("R")

# Read once at import: the umask can only be read by setting it, which is not thread-safe.
_UMASK = os.umask(0)
os.umask(_UMASK)


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: Literal["wb", "w"] = "wb",
    encoding: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temp file that replaces ``path`` when the ``with`` block finishes without error.

    The parent directory is created if needed. The temp file (``.<name>.<random>.tmp`` next to
    ``path``) is removed if the block raises, leaving ``path`` untouched.

    Args:
        path: Destination file.
        mode: ``"wb"`` for a binary or ``"w"`` for a text file object.
        encoding: Text encoding for ``mode="w"`` (default: the locale's); must be ``None``
            for ``"wb"``.

    Yields:
        The open temp file object; write the whole content to it.

    Raises:
        ValueError: If ``mode`` is not ``"wb"`` or ``"w"``.

    Example:
        >>> with atomic_open("out/labels.npy") as f:  # doctest: +SKIP
        ...     np.save(f, labels)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0o600
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``path`` with ``data``.

    Args:
        path: Destination file; its parent directory is created if needed.
        data: The complete new content.
    """
    with atomic_open(path, "wb") as f:
        f.write(data)


def save_png_atomic(img: Image.Image, dst: str | os.PathLike[str]) -> None:
    """Atomically save a PIL image as PNG.

    Args:
        img: The image (any mode PNG supports; a ``"P"`` image keeps its palette).
        dst: Destination file; its parent directory is created if needed.
    """
    with atomic_open(dst, "wb") as f:
        img.save(f, format="PNG")


def write_lines_atomic(path: str | os.PathLike[str], lines: Iterable[str]) -> bool:
    """Atomically write ``lines``, each followed by a newline, unless the file already matches.

    The file is not touched (its modification time is kept) when it already holds exactly this
    content, so re-running a tool does not make downstream caches look stale.

    Args:
        path: Destination text file (UTF-8); its parent directory is created if needed.
        lines: The lines, without trailing newlines.

    Returns:
        True if the file was written, False if it already had this content.
    """
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    p = Path(path)
    if p.is_file() and p.read_bytes() == data:
        return False
    atomic_write_bytes(p, data)
    return True


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Atomically ``torch.save`` ``obj`` to ``path``.

    Args:
        obj: Anything ``torch.save`` accepts.
        path: Destination file; its parent directory is created if needed.
    """
    import torch  # lazy: keep this module cheap to import for torch-free tools

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


# --------------------------------------------------------------------------- reading


class TextFileError(ValueError):
    """A text file that cannot be used as it is; the message names the file, the line and the fix.

    Attributes:
        path: the file.
        line: the 1-based line number the message is about (None: the whole file).
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.line = line


# Byte-order marks, longest first: a UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str | None], ...] = (
    (codecs.BOM_UTF32_LE, None),
    (codecs.BOM_UTF32_BE, None),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_SAVE_AS_UTF8 = ("Save the file as UTF-8 (in most editors: 'Save with encoding' → UTF-8); "
                 "UTF-16 with a byte-order mark is read too.")


def _line_of(text: str) -> int:
    """1-based number of the line that the end of ``text`` (a file's prefix) lies on."""
    return text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1


def read_text_lines(path: str | os.PathLike[str]) -> list[str]:
    """Read a small text file (class list, vocabulary, id list) as its lines, in order.

    The encoding is detected, not guessed: UTF-8 with or without a byte-order mark, or UTF-16
    with a BOM (LE or BE), which is what Windows editors write when they say "Unicode". Any
    other bytes are an error, because decoding them as something else would silently change a
    class name. ``\\n``, ``\\r\\n`` and ``\\r`` all end a line; one newline at the end of the
    file does not start another line. Lines are returned as they are (not stripped), so that
    list index + 1 is the line number a message should name.

    Args:
        path: the file.

    Returns:
        The lines without their line endings (``[]`` for an empty file).

    Raises:
        TextFileError: bytes that are not valid UTF-8 (e.g. Latin-1 or Windows-1252), a UTF-32
            file, or NUL characters (UTF-16 without a BOM); the message names the file and the
            first bad line and says to save the file as UTF-8.
        OSError: the file cannot be opened.
    """
    data = Path(path).read_bytes()
    encoding, skip = "utf-8", 0
    for bom, bom_encoding in _BOMS:
        if data.startswith(bom):
            if bom_encoding is None:
                raise TextFileError(f"{path}: the file is UTF-32, which is not supported. "
                                    + _SAVE_AS_UTF8, path)
            encoding, skip = bom_encoding, len(bom)
            break
    body = data[skip:]
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as err:
        line = _line_of(body[: err.start].decode(encoding, errors="ignore"))
        where = f"{path}:{line}: line {line}"
        if encoding == "utf-8":
            raise TextFileError(
                f"{where} is not valid UTF-8 (byte 0x{body[err.start]:02x} at offset "
                f"{skip + err.start}); the file was probably saved in another encoding, such as "
                "Latin-1 or Windows-1252. " + _SAVE_AS_UTF8, path, line) from None
        raise TextFileError(
            f"{where} is not valid UTF-16 although the file starts with a UTF-16 byte-order "
            "mark (damaged or cut short?). " + _SAVE_AS_UTF8, path, line) from None
    if "\x00" in text:
        line = _line_of(text[: text.index("\x00")])
        raise TextFileError(
            f"{path}:{line}: line {line} contains NUL characters: the file looks like UTF-16 or "
            "UTF-32 without a byte-order mark. " + _SAVE_AS_UTF8, path, line)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line (or an empty file)
    return lines


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Read a text file as a list of stripped, non-empty lines (e.g. an id list).

    Decoded by :func:`read_text_lines` (UTF-8 with or without BOM, UTF-16 with BOM).

    Args:
        path: The text file.

    Returns:
        The lines in file order, leading/trailing whitespace removed, blank lines skipped.

    Raises:
        TextFileError: the file is not UTF-8/UTF-16 text (names the file and line).
    """
    return [s for s in (line.strip() for line in read_text_lines(path)) if s]


# --------------------------------------------------------------------------- parallel map


class _Indexed(Generic[T, R]):
    """Picklable wrapper that tags each result with its task's index."""

    def __init__(self, fn: Callable[[T], R]) -> None:
        self.fn = fn

    def __call__(self, item: tuple[int, T]) -> tuple[int, R]:
        index, task = item
        return index, self.fn(task)


def parallel_map(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    nproc: int,
    desc: str | None = None,
    *,
    unit: str = "it",
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    max_chunksize: int = 64,
) -> list[R]:
    """Apply ``fn`` to every task, in ``nproc`` worker processes, with a tqdm progress bar.

    With ``nproc <= 1`` everything runs in this process (no pickling, easy debugging). With more
    workers the tasks are handed out in chunks through ``multiprocessing.Pool.imap_unordered``,
    so the bar advances as tasks finish; the results are still returned in task order.

    Args:
        fn: The work function. For ``nproc > 1`` it, the tasks and the results must be
            picklable (a module-level function, not a lambda or closure).
        tasks: The inputs, one call of ``fn`` each.
        nproc: Number of worker processes; ``<= 1`` means run serially in this process.
        desc: Label of the progress bar.
        unit: Unit shown by the progress bar (e.g. ``"img"``).
        initializer: Called as ``initializer(*initargs)`` once in each worker before its
            first task, e.g. to set up per-process state. With ``nproc <= 1`` it is called
            once in this process (so it changes this process's state). Not called when there
            are no tasks.
        initargs: Arguments for ``initializer``.
        max_chunksize: Upper bound of the number of tasks sent to a worker at once; the chunk
            size is ``len(tasks) // (8 * nproc)`` clipped to ``[1, max_chunksize]``.

    Returns:
        ``[fn(t) for t in tasks]``, in the order of ``tasks``.
    """
    tasks = list(tasks)
    if not tasks:
        return []
    if nproc <= 1:
        if initializer is not None:
            initializer(*initargs)
        return [fn(task) for task in tqdm(tasks, desc=desc, unit=unit)]
    chunksize = max(1, min(max_chunksize, len(tasks) // (nproc * 8)))
    results: list[Any] = [None] * len(tasks)
    with Pool(nproc, initializer=initializer, initargs=initargs) as pool:
        for index, result in tqdm(
            pool.imap_unordered(_Indexed(fn), enumerate(tasks), chunksize=chunksize),
            total=len(tasks),
            desc=desc,
            unit=unit,
        ):
            results[index] = result
    return results
