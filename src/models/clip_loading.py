"""Building an open_clip CLIP from a pretrained tag or a local checkpoint file.

Only open_clip's public factory is used (``create_model``, ``get_pretrained_cfg``,
``add_model_config``); nothing of open_clip is forked.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import open_clip
from torch import nn

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


def _looks_like_file(pretrained: str) -> bool:
    return (
        os.sep in pretrained
        or pretrained.startswith(".")
        or pretrained.lower().endswith(CHECKPOINT_SUFFIXES)
        or Path(pretrained).exists()
    )


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
    if _looks_like_file(pretrained):
        path = Path(pretrained).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(
                f"CLIP checkpoint {path} does not exist. teacher.pretrained takes an open_clip tag "
                f"(e.g. {open_clip.list_pretrained_tags_by_model(model_name)[:4]}) or a local "
                "file (.pt/.pth/.bin/.safetensors state dict)."
            )
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
    except (RuntimeError, OSError) as err:
        if spec.pretrained is None or Path(spec.pretrained).is_file():
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
