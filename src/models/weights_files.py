"""Reading a weights file the way it is meant to be read, or saying in one sentence why not.

safetensors, or ``torch.load(weights_only=True)`` (no code runs), memory-mapped where possible.
A truncated, empty, TorchScript or foreign file raises :class:`UnreadableWeightsError` naming
the file, its size and the reason, instead of a pickle/zip error. Used for CLIP checkpoints
(``teacher.pretrained``), student checkpoints (``ckpt_path``) and backbone files
(``student.pretrained``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def format_size(size: int) -> str:
    """``0 bytes``, ``812 bytes``, ``20.4 KB``, ``3.1 MB``, ``1.2 GB``."""
    if size < 1000:
        return f"{size} bytes"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if size < scale * 1000 or unit == "GB":
            value = size / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{size} bytes"  # unreachable


class UnreadableWeightsError(ValueError):
    """A file that torch.load(weights_only=True) / safetensors cannot read.

    Attributes:
        path, size: the file and its size in bytes.
        reason: why, as a clause (``the file is empty``, ``... truncated ...``).
        damaged: True when the file is empty or cut short (copy it again), False when it is
            whole but of another kind (a TorchScript archive, pickled objects, not torch).
    """

    def __init__(self, path: Path, size: int, reason: str, damaged: bool = True) -> None:
        self.path, self.size, self.reason, self.damaged = path, size, reason, damaged
        super().__init__(f"{path} ({format_size(size)}) cannot be read: {reason}")


@dataclass
class WeightsFile:
    """A weights file as read (lazily: torch zip archives are memory-mapped).

    Attributes:
        path, size: the file and its size in bytes.
        format: ``safetensors`` or ``torch``.
        obj: what ``torch.load`` returned (None for safetensors).
        shapes: key → shape of the state dict it holds, unwrapped as open_clip does (the
            ``state_dict`` entry of a training checkpoint, ``module.`` prefixes dropped); None
            when it holds no tensors.
    """

    path: Path
    size: int
    format: str
    obj: object
    shapes: dict[str, tuple[int, ...]] | None


def _sniff(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def _tensor_shapes(state: object) -> dict[str, tuple[int, ...]] | None:
    import torch

    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        return None
    shapes = {str(k): tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if shapes and next(iter(shapes)).startswith("module"):  # as open_clip's load_state_dict
        shapes = {k[7:]: v for k, v in shapes.items()}
    return shapes or None


def _torch_load_problem(err: Exception, head: bytes) -> str:
    """A clause saying why torch.load failed on a file."""
    text = str(err)
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    if isinstance(err, EOFError) or "Ran out of input" in text:
        return "the data ends early: the file is truncated (an interrupted download, copy or save?)"
    if "central directory" in text or "PytorchStreamReader" in text:
        return ("torch.save's zip archive is cut short or damaged (no central directory): the file "
                "is truncated or corrupted (an interrupted download, copy or save?)")
    if "Weights only load failed" in text:
        return ("it holds pickled Python objects, not only tensors (e.g. a whole model saved with "
                "torch.save(model)); weights_only=True refuses to run their code, so it is not "
                "read as a state dict")
    if "invalid load key" in text or _sniff(head) == "unknown":
        return f"it is not a torch.save or safetensors file (it begins with {head[:8]!r})"
    return f"torch.load failed ({type(err).__name__}: {first[:200]})"


def read_weights_file(path: str | Path, *, mmap: bool = True) -> WeightsFile:
    """Read a .pt/.pth/.bin/.ckpt (torch.load, weights_only=True) or .safetensors file.

    Args:
        mmap: memory-map torch zip archives (tensors are read only when touched; the shapes and
            the non-tensor entries are at hand at once).

    Raises:
        FileNotFoundError: no such file.
        UnreadableWeightsError: empty, truncated, a TorchScript archive, pickled objects, or
            not a torch/safetensors file; ``reason`` says which.
    """
    import pickle
    import zipfile

    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or is not a file)")
    size = path.stat().st_size
    if size == 0:
        raise UnreadableWeightsError(path, 0, "the file is empty (an interrupted download, copy "
                                              "or save?)")
    with path.open("rb") as fh:
        head = fh.read(16)
    kind = _sniff(head)
    if path.suffix.lower() == ".safetensors" or kind == "safetensors":
        if kind in ("zip", "pickle"):
            raise UnreadableWeightsError(path, size, "it is a torch.save file, not safetensors: "
                                                     "rename it to .pt (the reader follows the "
                                                     "suffix)", damaged=False)
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
        except Exception as err:  # noqa: BLE001 - SafetensorError and friends
            raise UnreadableWeightsError(path, size, (
                f"it is not a complete safetensors file ({str(err).strip()[:160]}): truncated or "
                "damaged (an interrupted download, copy or save?)")) from err
        return WeightsFile(path, size, "safetensors", None, shapes or None)
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
            raise UnreadableWeightsError(path, size, (
                "it is a TorchScript archive (torch.jit.save, e.g. OpenAI's original CLIP "
                "release), which weights_only=True cannot read; save its state dict first: "
                "python -c \"import torch; sd = torch.jit.load('IN.pt', map_location='cpu')"
                ".state_dict(); [sd.pop(k, None) for k in ('input_resolution', 'context_length', "
                "'vocab_size')]; torch.save(sd, 'OUT.pt')\" (OpenAI weights also need "
                "teacher.quick_gelu=true)"), damaged=False)
    elif kind == "zip":
        raise UnreadableWeightsError(path, size, _torch_load_problem(
            RuntimeError("PytorchStreamReader failed finding central directory"), head))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError, KeyError,
            AttributeError, TypeError) as err:
        reason = _torch_load_problem(err, head)
        damaged = "truncated" in reason
        raise UnreadableWeightsError(path, size, reason, damaged) from err
    return WeightsFile(path, size, "torch", obj, _tensor_shapes(obj))
