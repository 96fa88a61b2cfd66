"""Building an open_clip CLIP from a pretrained tag or a local checkpoint file.

Only open_clip's public factory is used (``create_model``, ``get_pretrained_cfg``,
``add_model_config``); nothing of open_clip is forked.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import open_clip
from torch import nn

from src.models.weights_files import (UnreadableWeightsError, WeightsFile, format_size,
                                      read_weights_file)

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz")

# The project's own architectures (tiny test models, the offline world's CLIP) are open_clip
# JSON configs; registering the folder makes them buildable by name like any open_clip model.
PROJECT_MODEL_CONFIGS = Path(__file__).parent / "model_configs"
open_clip.add_model_config(PROJECT_MODEL_CONFIGS)


@dataclass(frozen=True)
class ClipSpec:
    """How a CLIP was resolved: what to pass to ``open_clip.create_model`` and why.

    Attributes:
        arch: the open_clip architecture actually built (may be the ``-quickgelu`` twin).
        pretrained: the tag, the absolute file path, or None for random init.
        quick_gelu: whether the MLPs use QuickGELU.
        weights_id: a stable identity of the weights for caches; None for random init.
    """

    arch: str
    pretrained: str | None
    quick_gelu: bool
    weights_id: str | None


def looks_like_file(pretrained: str) -> bool:
    return (
        os.sep in pretrained
        or pretrained.startswith(".")
        or pretrained.lower().endswith(CHECKPOINT_SUFFIXES)
        or Path(pretrained).exists()
    )


def local_weights_file(pretrained: str, missing: str) -> Path | None:
    """The resolved path when ``pretrained`` names a local file, None when it is a hub tag.

    Raises:
        FileNotFoundError: it names a file that does not exist; ``missing`` says what the
            setting takes instead (the path is put in front).
    """
    if not looks_like_file(pretrained):
        return None
    path = Path(pretrained).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. {missing}")
    return path


def _tag_wants_quick_gelu(arch: str, tag: str) -> bool:
    cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
    return bool(cfg.get("quick_gelu", False))


def resolve_clip(
    model_name: str, pretrained: str | None, quick_gelu: bool | None = None
) -> ClipSpec:
    """Decide architecture, weights and activation for a (model_name, pretrained) pair.

    OpenAI weights were trained with QuickGELU; open_clip's plain ``ViT-B-16`` builds exact GELU
    and only warns when given ``pretrained='openai'``. For a tag whose open_clip config says
    ``quick_gelu``, the ``-quickgelu`` twin architecture is chosen. For local files the
    activation cannot be read from the weights, so ``quick_gelu`` says it (default False; set it
    True for OpenAI weights saved to disk).

    Raises:
        FileNotFoundError: ``pretrained`` looks like a path but does not exist.
        ValueError: unknown architecture, or a tag open_clip does not know for it.
    """
    if model_name not in open_clip.list_models() and ":" not in model_name:
        raise ValueError(
            f"unknown open_clip architecture {model_name!r}. Known ones include "
            f"{[m for m in open_clip.list_models() if m.startswith(('ViT-B', 'RN'))][:12]} ... "
            "(open_clip.list_models()). A custom JSON config can be registered with "
            "teacher.model_config=/path/to/config.json."
        )
    if pretrained in (None, "", "none", "None"):
        return ClipSpec(model_name, None, bool(quick_gelu) or model_name.endswith("-quickgelu"),
                        None)

    pretrained = str(pretrained)
    path = local_weights_file(pretrained, (
        f"CLIP checkpoint not found: teacher.pretrained takes an open_clip tag "
        f"(e.g. {open_clip.list_pretrained_tags_by_model(model_name)[:4]}) or a local "
        "file (.pt/.pth/.bin/.safetensors state dict)."))
    if path is not None:
        use_quick = bool(quick_gelu) or model_name.endswith("-quickgelu")
        stat = path.stat()
        weights_id = f"{model_name}|{path}|{stat.st_size}|{stat.st_mtime_ns}|qg={use_quick}"
        return ClipSpec(model_name, str(path), use_quick, weights_id)

    tags = open_clip.list_pretrained_tags_by_model(model_name)
    tag = pretrained.lower().replace("-", "_")
    if tag not in tags:
        raise ValueError(
            f"open_clip has no pretrained tag {pretrained!r} for {model_name!r}; "
            f"available: {tags}. Or pass a local checkpoint file path."
        )
    arch = model_name
    wants_quick = _tag_wants_quick_gelu(model_name, tag)
    twin = f"{model_name}-quickgelu"
    if wants_quick and not model_name.endswith("-quickgelu") and twin in open_clip.list_models():
        arch = twin
    use_quick = wants_quick if quick_gelu is None else bool(quick_gelu)
    if quick_gelu is not None and bool(quick_gelu) != wants_quick:
        warnings.warn(
            f"quick_gelu={quick_gelu} overrides the activation that weights {tag!r} were trained "
            f"with (quick_gelu={wants_quick}); features will be off.",
            stacklevel=2,
        )
        arch = model_name
    return ClipSpec(arch, tag, use_quick, f"{arch}|{tag}|qg={use_quick}")


def create_clip(
    model_name: str,
    pretrained: str | None,
    *,
    quick_gelu: bool | None = None,
    model_config: str | None = None,
    **create_kwargs,
) -> tuple[nn.Module, ClipSpec]:
    """Build the full open_clip model (image and text towers) in eval mode on CPU.

    Args:
        model_name: open_clip architecture, e.g. ``ViT-B-16``, ``RN50``.
        pretrained: open_clip tag (``openai``, ``laion2b_s34b_b88k``), a local checkpoint path,
            or None for random init.
        quick_gelu: activation switch for local files / random init (see ``resolve_clip``).
        model_config: optional path to an open_clip JSON architecture to register first.
        create_kwargs: passed to ``open_clip.create_model`` (e.g. ``force_image_size``).

    Returns:
        (model, spec).

    Raises:
        ValueError: a local ``pretrained`` file that does not load: empty or truncated, not a
            torch/safetensors file, not a CLIP, or a CLIP of another architecture. The message
            names the file, its size, what it seems to be and what to pass instead.
    """
    if model_config:
        config_path = Path(model_config)
        if not config_path.is_file():
            raise FileNotFoundError(f"open_clip model config {config_path} does not exist")
        open_clip.add_model_config(config_path)
    spec = resolve_clip(model_name, pretrained, quick_gelu)
    weights = spec.pretrained
    if weights is not None and not Path(weights).is_file():
        # A tag: use the hub cache if it has the file; offline without it, fail at once.
        weights = locate_pretrained(spec.arch, weights) or weights
    try:
        model = open_clip.create_model(
            spec.arch,
            pretrained=weights,
            force_quick_gelu=spec.quick_gelu and not spec.arch.endswith("-quickgelu"),
            weights_only=True,
            **create_kwargs,
        )
    except Exception as err:
        if spec.pretrained is not None and Path(spec.pretrained).is_file():
            if Path(spec.pretrained).suffix.lower() in (".npz", ".npy"):
                raise  # big_vision numpy weights: open_clip's own converter speaks for them
            # A local file that does not load: say what it is and what to pass instead.
            message = explain_clip_file(spec.pretrained, spec.arch, **create_kwargs)
            if message is not None:
                raise ValueError(message) from err
            raise
        if spec.pretrained is None or not isinstance(err, (RuntimeError, OSError)):
            raise
        raise RuntimeError(
            f"could not obtain pretrained weights {spec.pretrained!r} for {spec.arch} ({err}). "
            "They download from the model hub on first use; offline, pass a local file with "
            "teacher.pretrained=/path/to/weights.pt (OpenAI weights also need "
            "teacher.quick_gelu=true), or use teacher=tiny for a random-init smoke test."
        ) from err
    model.eval()
    return model, spec


HUB_HOST = "huggingface.co"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached locally nor downloadable right now."""


def hub_offline_reason(timeout: float = 3.0) -> str | None:
    """Why the model hub cannot be used now (None when it can).

    ``HF_HUB_OFFLINE`` is honoured first; otherwise one TCP connection attempt with a short
    timeout replaces open_clip's minute of download retries. Behind a proxy the probe is skipped
    and the download left to try.
    """
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
    except OSError as err:
        return f"{HUB_HOST} is unreachable ({err})"
    return None


def locate_pretrained(arch: str, tag: str, cache_dir: str | None = None) -> str | None:
    """The local file of an open_clip tag in the Hugging Face cache, if it is there.

    Returns:
        The cached file path, or None when the hub is usable and the download should proceed.

    Raises:
        WeightsUnavailableError: not cached and the hub cannot be reached; the message says how
            to point the teacher at a local file and that ``teacher=world`` needs no download.
    """
    from huggingface_hub import try_to_load_from_cache
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        repo_id, filename = hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (
            hub.rstrip("/"), "")
        candidates = ([filename] if filename else []) + [
            "open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in dict.fromkeys(candidates):
            found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(found, str):
                return found
    reason = hub_offline_reason()
    if reason is None:
        return None
    raise WeightsUnavailableError(
        f"{arch} weights {tag!r} are not in the local cache and cannot be downloaded: {reason}. "
        f"Point the teacher at a local file: teacher.pretrained=/path/to/weights.pt "
        f"(OpenAI weights also need teacher.quick_gelu=true), or run with teacher=world, the "
        f"offline world's CLIP, which needs no download.")


IMAGE_ACTIVATIONS = ("gelu", "quick_gelu")


def set_image_tower_numerics(visual: nn.Module, activation: str | None = None,
                             ln_eps: float | None = None) -> dict[str, object]:
    """Change the MLP activation and the LayerNorm eps of a built ViT image tower, in place.

    The official MaskCLIP code rebuilt CLIP's image tower as an mmseg ViT with exact GELU and
    LayerNorm eps 1e-6 (``configs/_base_/models/maskclip_vit16.py``) and loaded OpenAI weights,
    trained with QuickGELU and eps 1e-5, into it; its text embeddings came from OpenAI's own
    model. Reproducing that means changing the image tower alone, after open_clip has built the
    model: the text tower keeps what ``quick_gelu`` chose. Nothing of open_clip is forked: each
    block's ``mlp.gelu`` module is swapped and each LayerNorm's ``eps`` attribute is set.

    Args:
        visual: ``clip.visual`` (an open_clip VisionTransformer; a ModifiedResNet has neither
            GELU nor LayerNorm and is left as it is, as in the official ``ResNetClip``).
        activation: ``gelu`` (exact), ``quick_gelu`` (x·σ(1.702x)), or None to keep.
        ln_eps: the eps of every LayerNorm of the tower (ln_pre, ln_1, ln_2, ln_post), or None.

    Returns:
        What was changed: ``{"activation": ..., "ln_eps": ..., "blocks": n}`` (empty when
        nothing was).
    """
    from open_clip.transformer import QuickGELU

    if activation is not None and activation not in IMAGE_ACTIVATIONS:
        raise ValueError(f"teacher.image_act={activation!r}: choose one of "
                         f"{list(IMAGE_ACTIVATIONS)} or null (keep the model's)")
    if ln_eps is not None and not (0 < float(ln_eps) < 1):
        raise ValueError(f"teacher.image_ln_eps={ln_eps!r}: a small positive float such as "
                         "1e-6 (official mmseg ViT) or 1e-5 (CLIP), or null")
    changed: dict[str, object] = {}
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None:
        return changed
    if activation is not None:
        make = nn.GELU if activation == "gelu" else QuickGELU
        for block in blocks:
            block.mlp.gelu = make()
        changed.update(activation=activation, blocks=len(blocks))
    if ln_eps is not None:
        for module in visual.modules():
            if isinstance(module, nn.LayerNorm):
                module.eps = float(ln_eps)
        changed["ln_eps"] = float(ln_eps)
    return changed


# ============================================================================ weights files
# Reading the file itself is src.models.weights_files; here: what a CLIP file holds.
# What a weights file holds, read the way it is meant to be read (safetensors, or torch.load with
# weights_only=True: no code runs), so that a wrong, truncated or foreign file fails with one
# sentence that names it, instead of a pickle/zip error or a 20 KB missing-keys dump.

#: Entries open_clip adapts while loading (positional embeddings are resized to the configured
#: grid/context, ``logit_scale``/``logit_bias`` reshaped or added): a different shape is no misfit.
ADAPTED_BY_OPEN_CLIP = ("visual.positional_embedding", "positional_embedding",
                        "text.positional_embedding", "logit_scale", "logit_bias")


# ------------------------------------------------------------------------- what a file holds
@dataclass(frozen=True)
class ClipShape:
    """The sizes of an open_clip CLIP that its state dict shows."""

    tower: str                      # ViT | ModifiedResNet
    width: int
    layers: int | tuple[int, ...]
    patch: int | None
    image_size: int | None
    embed_dim: int | None
    text_width: int | None
    text_layers: int | None

    def key(self) -> tuple:
        """What must agree for the weights to load (open_clip resizes a ViT's positions)."""
        size = self.image_size if self.tower == "ModifiedResNet" else None
        return (self.tower, self.width, self.layers, self.patch, size, self.embed_dim,
                self.text_width, self.text_layers)

    def describe(self) -> str:
        if self.tower == "ViT":
            tower = f"a ViT of width {self.width}, {self.layers} layers, patch {self.patch}"
        else:
            tower = (f"a ModifiedResNet (RN) of width {self.width}, blocks "
                     f"{list(self.layers)}")
        if self.image_size:
            tower += f" ({self.image_size} px input)"
        text = (f"; text tower of width {self.text_width}, {self.text_layers} layers"
                if self.text_width else "; no text tower")
        joint = f"; joint embedding {self.embed_dim}" if self.embed_dim else ""
        return tower + text + joint


def _count_blocks(shapes: dict[str, tuple], prefix: str) -> int:
    indices = {k[len(prefix):].split(".", 1)[0] for k in shapes if k.startswith(prefix)}
    return len([i for i in indices if i.isdigit()])


def clip_shape(shapes: dict[str, tuple[int, ...]]) -> ClipShape | None:
    """Read a CLIP's sizes from its state dict shapes (None: not an open_clip/OpenAI CLIP)."""
    import math

    vis = {k[len("visual."):]: s for k, s in shapes.items() if k.startswith("visual.")}
    if ("conv1.weight" in vis and len(vis["conv1.weight"]) == 4 and "class_embedding" in vis
            and _count_blocks(vis, "transformer.resblocks.")):
        width, _, patch, _ = vis["conv1.weight"]
        tokens = vis.get("positional_embedding", (0,))[0]
        grid = math.isqrt(max(tokens - 1, 0))
        proj = vis.get("proj")
        tower = ("ViT", width, _count_blocks(vis, "transformer.resblocks."), patch,
                 grid * patch if grid else None, proj[1] if proj and len(proj) == 2 else None)
    elif "attnpool.c_proj.weight" in vis and "layer1.0.conv1.weight" in vis:
        spatial = math.isqrt(max(vis.get("attnpool.positional_embedding", (1,))[0] - 1, 0))
        tower = ("ModifiedResNet", vis["conv1.weight"][0] * 2,
                 tuple(_count_blocks(vis, f"layer{i}.") for i in range(1, 5)), None,
                 spatial * 32 if spatial else None, vis["attnpool.c_proj.weight"][0])
    else:
        return None
    text_width = text_layers = None
    for prefix in ("", "text."):
        token = shapes.get(f"{prefix}token_embedding.weight")
        if token is not None and len(token) == 2:
            text_width = token[1]
            text_layers = _count_blocks(shapes, f"{prefix}transformer.resblocks.")
            break
    return ClipShape(*tower[:5], tower[5], text_width, text_layers)


def describe_maskclip_plus_checkpoint(obj: dict) -> str:
    """``a MaskCLIP+ checkpoint of 20 classes with backbone resnet101c (deeplabv2 head, ...)``."""
    extra = obj.get("maskclip_plus") or {}
    hparams = obj.get("hyper_parameters") or {}
    student = hparams.get("student_cfg") or {}
    names = (extra.get("vocabulary") or {}).get("names") or []
    details = []
    decoder = student.get("head") or student.get("decoder")  # "head": before the rename
    if decoder:
        details.append(f"{decoder} head")
    teacher = extra.get("teacher") or {}
    if teacher.get("model_name"):
        details.append(f"teacher {teacher['model_name']}")
    if isinstance(obj.get("global_step"), int):
        details.append(f"step {obj['global_step']}")
    text = (f"a MaskCLIP+ student checkpoint of {len(names)} classes with backbone "
            f"{student.get('backbone', '?')}")
    return text + (f" ({', '.join(details)})" if details else "")


def describe_weights(weights: WeightsFile) -> tuple[str, str, ClipShape | None]:
    """(kind, what the file seems to be, its CLIP sizes when it is a CLIP).

    kind: ``clip``, ``maskclip_plus``, ``lightning``, ``hf_clip``, ``resnet``, ``state_dict``
    or ``other``.
    """
    obj, shapes = weights.obj, weights.shapes
    if isinstance(obj, dict) and "maskclip_plus" in obj:
        return "maskclip_plus", describe_maskclip_plus_checkpoint(obj), None
    if shapes is None:
        what = type(obj).__name__ if not isinstance(obj, dict) else "a dict without tensors"
        return "other", f"a torch file holding {what}, not a state dict", None
    shape = clip_shape(shapes)
    if shape is not None:
        return "clip", f"an open_clip/OpenAI CLIP state dict for {shape.describe()}", shape
    keys = list(shapes)
    examples = ", ".join(keys[:3])
    if isinstance(obj, dict) and "pytorch-lightning_version" in obj:
        if any(k.startswith("student.") for k in keys):
            return ("lightning", "a Lightning checkpoint with a student but without the MaskCLIP+ "
                                 "entry (not written by src.train)", None)
        return ("lightning", f"a Lightning checkpoint of another model ({len(keys)} weights "
                             f"such as {examples})", None)
    if any(k.startswith("vision_model.") for k in keys) and any(
            k.startswith("text_model.") for k in keys):
        return ("hf_clip", "a Hugging Face transformers CLIPModel state dict (vision_model./"
                           "text_model. names, which open_clip does not read; use the open_clip "
                           "release of the same weights)", None)
    layers = {m.group(1) for k in keys if (m := re.search(r"(?:^|\.)layer([1-4])\.", k))}
    if len(layers) >= 3:
        return ("resnet", "a ResNet image backbone state dict (layer1-4 names, torchvision/timm/"
                          "mmcv style) with no text tower", None)
    if any(k.startswith("visual.") for k in keys):
        return ("state_dict", f"a CLIP-like state dict whose image tower is neither open_clip's "
                              f"ViT nor its ModifiedResNet ({len(keys)} weights such as "
                              f"{examples})", None)
    return ("state_dict", f"a state dict of {len(keys)} tensors without CLIP names (such as "
                          f"{examples})", None)


# ------------------------------------------------------------------------ expected shapes
class _DropNoWeightsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


def expected_shapes(arch: str, **create_kwargs) -> dict[str, tuple[int, ...]]:
    """Key → shape of the state dict ``open_clip.create_model(arch)`` builds (on the meta device:
    nothing is allocated, a ViT-L takes milliseconds)."""
    quiet = _DropNoWeightsWarning()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        model = open_clip.create_model(arch, pretrained=None, device="meta", **create_kwargs)
    finally:
        root.removeFilter(quiet)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _shape_differences(found: dict[str, tuple], expected: dict[str, tuple]
                       ) -> tuple[list[str], list[str], list[tuple[str, tuple, tuple]]]:
    """(missing, unexpected, other shape) keys, ignoring what open_clip adapts on loading."""
    if "text.token_embedding.weight" in expected and "token_embedding.weight" in found:
        # open_clip renames an old-layout text tower for CustomTextCLIP models
        found = {(k if k.startswith(("visual.", "logit_")) else f"text.{k}"): v
                 for k, v in found.items()}
    missing = [k for k in expected if k not in found and k not in ADAPTED_BY_OPEN_CLIP]
    unexpected = [k for k in found if k not in expected]
    other = [(k, found[k], expected[k]) for k in expected
             if k in found and found[k] != expected[k] and k not in ADAPTED_BY_OPEN_CLIP]
    return missing, unexpected, other


def _weights(count: int) -> str:
    return f"{count} weight" + ("" if count == 1 else "s")


def _summarize_differences(missing, unexpected, other) -> str:
    parts = []
    if other:
        examples = "; ".join(f"{k}: {tuple(a)} in the file vs {tuple(b)} expected"
                             for k, a, b in other[:2])
        parts.append(f"{_weights(len(other))} of another shape (e.g. {examples})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:2])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:2])})")
    return "; ".join(parts)


def _config_shape(cfg: dict) -> ClipShape | None:
    vision, text = cfg.get("vision_cfg") or {}, cfg.get("text_cfg") or {}
    if vision.get("timm_model_name") or text.get("hf_model_name"):
        return None
    layers = vision.get("layers", 12)
    image = vision.get("image_size", 224)
    image = image[0] if isinstance(image, (list, tuple)) else image
    if isinstance(layers, (list, tuple)):
        return ClipShape("ModifiedResNet", vision.get("width", 64), tuple(layers), None, image,
                         cfg.get("embed_dim"), text.get("width", 512), text.get("layers", 12))
    return ClipShape("ViT", vision.get("width", 768), layers, vision.get("patch_size", 16),
                     image, cfg.get("embed_dim"), text.get("width", 512), text.get("layers", 12))


def matching_architectures(shapes: dict[str, tuple[int, ...]], shape: ClipShape,
                           limit: int = 8) -> list[str]:
    """Registered open_clip architectures these weights load into (sizes first, then every
    key and shape on the meta device)."""
    names = []
    for name in open_clip.list_models():
        cfg = open_clip.get_model_config(name) or {}
        candidate = _config_shape(cfg)
        if candidate is None or candidate.key() != shape.key():
            continue
        try:
            if not any(_shape_differences(shapes, expected_shapes(name))):
                names.append(name)
        except Exception:  # noqa: BLE001 - a config that does not build is no candidate
            continue
        if len(names) >= limit:
            break
    # the plain name before its -quickgelu twin
    return sorted(names, key=lambda n: (n.endswith("-quickgelu"), names.index(n)))


def explain_clip_file(path: str | Path, arch: str, **create_kwargs) -> str | None:
    """Why ``path`` cannot be loaded as ``teacher.pretrained`` for ``arch``, with the fix.

    Returns:
        The message, or None when the file reads and fits ``arch`` (the failure lies elsewhere).
    """
    path = Path(path)
    key = f"teacher.pretrained={path}"
    try:
        expected = expected_shapes(arch, **create_kwargs)
    except Exception:  # noqa: BLE001 - the diagnosis must not hide the original error
        expected = None
    try:
        weights = read_weights_file(path)
    except UnreadableWeightsError as err:
        if not err.damaged:
            return (f"{key} ({format_size(err.size)}) cannot be read: {err.reason}. "
                    f"teacher.pretrained takes an open_clip/OpenAI CLIP state dict "
                    f"(.pt/.pth/.bin/.safetensors) of teacher.model_name={arch}, an open_clip tag, "
                    f"or null for random init.")
        hint = ""
        if expected:
            import math

            count = sum(math.prod(s) for s in expected.values())
            hint = (f" (a complete {arch} checkpoint is about {format_size(4 * count)} in float32, "
                    f"{format_size(2 * count)} in float16)")
        return (f"{key} ({format_size(err.size)}) cannot be read: {err.reason}. Download or copy "
                f"the file again{hint}, or pass another one; teacher.pretrained=null builds a "
                f"random-init {arch}.")
    kind, what, shape = describe_weights(weights)
    size = format_size(weights.size)
    if kind != "clip":
        tags = open_clip.list_pretrained_tags_by_model(arch)[:3]
        student = (" A MaskCLIP+ student checkpoint is evaluated with src.eval ckpt_path= (or "
                   "src.predict ckpt_path=)." if kind == "maskclip_plus" else "")
        tag_hint = f"an open_clip tag (e.g. {', '.join(tags)}), " if tags else ""
        return (f"{key} ({size}) is not a CLIP checkpoint: it is {what}. teacher.pretrained takes "
                f"an open_clip/OpenAI CLIP state dict (.pt/.pth/.bin/.safetensors) of "
                f"teacher.model_name={arch}, {tag_hint}or null for random init.{student}")
    if expected is None:
        return None
    differences = _shape_differences(weights.shapes, expected)
    if not any(differences):
        return None
    wanted = clip_shape(expected)
    wanted_text = wanted.describe() if wanted else "another architecture"
    matches = [m for m in matching_architectures(weights.shapes, shape) if m != arch]
    if matches:
        also = f" (also fits: {', '.join(matches[1:4])})" if len(matches) > 1 else ""
        fix = f"Pass teacher.model_name={matches[0]} for this file{also}"
    else:
        fix = ("No registered open_clip architecture has these shapes: register its JSON config "
               "with teacher.model_config=/path/to/config.json and name it in teacher.model_name")
    return (f"{key} ({size}) does not fit teacher.model_name={arch}: the file is {what}, but "
            f"{arch} is {wanted_text} ({_summarize_differences(*differences)}). {fix}, or pass "
            f"a {arch} checkpoint as teacher.pretrained.")
