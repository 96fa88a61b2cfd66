"""An interactive page: label your own images with free-text classes, in the browser (Gradio).

    python -m src.app                                     # offline: the world CLIP and its scenes
    python -m src.app teacher.pretrained=/w/ViT-B-16.pt teacher.quick_gelu=true
    python -m src.app checkpoints='[/runs/a/last.ckpt,/runs/b/last.ckpt]' port=7861
    python -m src.app ckpt_path=/runs/a/last.ckpt         # a student, chosen by default

The page takes one or several images (upload, paste or a bundled example), classes as free text or
a shipped vocabulary, background words and threshold, the head, key smoothing / prompt denoising,
PAMR, whole or sliding-window inference and the model (the teacher or a student checkpoint the
server was started with). It shows the overlay beside the image, the class areas, the confidence
map, downloads of the label PNG and the overlay, and the ``python -m src.predict`` command that
writes the same files. A second tab compares two settings on the same image.

Two layers:

- the function layer (:class:`LabellingApp` and the plain functions above it): settings → the
  ``src.predict`` overrides, upload checks, labelling through src.predict's own steps
  (``ImageListDataset`` items, ``DenseLabelModule.predict_step``, ``PredictionWriter.write_item``),
  the area table, the downloads; no Gradio import, testable without a browser;
- the page (:func:`build_ui`, :func:`launch`): Gradio components wired to it.

Each request composes ``conf/predict.yaml`` with the page's settings on top of the overrides the
server was started with: that composed config is the one labelled with, and the one the shown
command reproduces. The CLIP is built once per weights and kept; the head (among the last-block
heads), the refinement, PAMR and the inference are switched on it per request. A frontier head
(``scclip``, ``resclip``, ``proxyclip``...) holds its own parts, so a teacher is built for it and
kept beside the base one (one at a time). One request runs at a time (Gradio's queue, concurrency
limit 1); the others wait their turn.

No network: Gradio's analytics are off, no share link, the theme uses the system's fonts, and
``HF_HUB_OFFLINE`` defaults to 1 (weights come from files or the local cache; with none there, the
page starts on the world CLIP and says so).
"""

from __future__ import annotations

import os

# Before gradio or huggingface_hub are imported (both read these at import time): the page makes
# no network call. HF_HUB_OFFLINE=0 in the environment still lets open_clip download a tag.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import atexit  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, OrderedDict  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from src.labelling import (  # noqa: E402
    build_labeller, class_list_argv, command_line, load_classes)
from src.utils.config import CONFIG_DIR, to_plain  # noqa: E402

log = logging.getLogger(__name__)

TEACHER = "teacher"          # the model choice that is the configured CLIP (else a checkpoint path)
FREE_TEXT = ""               # the vocabulary choice that means "the class box"
INFERENCE_MODES = ("whole", "slide")
OUT = "predictions"          # out= in the shown command
# Characters that are Hydra override syntax (quotes, interpolation, lists, dicts) or a vocabulary
# line's "name: prompts" separator: a class name with one could change the composed config.
FORBIDDEN = set("$\\'\"[]{}=:`")
MAX_NAME = 100
RESULTS_KEPT = 16            # result folders kept on disk (Gradio keeps its own copies meanwhile)
WORLD_OVERRIDES = ("teacher=world", "prompts=world", "scale=null")
# src.predict keys that decide where and what it writes, not the labels: never taken from the
# server's command line into a request (the page sets images, classes and out itself).
IO_KEYS = {"images", "out", "overwrite", "confidence", "overlays", "classes", "ckpt_path",
           "task_name"}


class AppError(ValueError):
    """A problem with the request the page shows as it is (no traceback): the field and the fix."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Request:
    """The page's settings for one labelling.

    Attributes:
        classes: free text, comma-separated (``"cat, dog, grass"``); used when ``vocabulary`` is
            ``FREE_TEXT``.
        vocabulary: a shipped vocabulary name (``voc20``), or ``FREE_TEXT``.
        background_words: ``""`` (none), ``stuff``, ``background`` or comma-separated prompts.
        background_threshold: 0 (off) or a probability in (0, 1).
        head, key_smoothing, prompt_denoising, pamr, inference: the teacher's settings (a
            student has its own head and no refinement; they are then not used).
        model: ``TEACHER`` or one of the server's checkpoint paths.
    """

    classes: str = ""
    vocabulary: str = FREE_TEXT
    background_words: str = ""
    background_threshold: float = 0.0
    head: str = "maskclip"
    key_smoothing: bool = False
    prompt_denoising: bool = False
    pamr: bool = False
    inference: str = "whole"
    model: str = TEACHER


@dataclass(frozen=True)
class Limits:
    """What one request may ask (``conf/app.yaml``)."""

    max_upload_mb: float = 20.0
    max_image_side: int = 4096
    max_images: int = 8
    max_classes: int = 200
    queue_size: int = 16

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> "Limits":
        values = {k: cfg.get(k) for k in cls.__dataclass_fields__ if cfg.get(k) is not None}
        limits = cls(**values)
        for key, value in vars(limits).items():
            if not value > 0:
                raise ValueError(f"{key}={value}: must be positive")
        return limits


def head_choices() -> list[str]:
    """The heads of ``conf/teacher/head`` (the last-block heads first): later heads appear here
    as soon as their config does."""
    from src.models.heads import HEADS

    names = sorted(p.stem for p in (Path(CONFIG_DIR) / "teacher" / "head").glob("*.yaml"))
    return [h for h in HEADS if h in names] + [h for h in names if h not in HEADS]


def vocabulary_choices() -> list[str]:
    from src.prompts.vocabulary import available_vocabularies

    return available_vocabularies()


def check_text(value: str, field: str) -> str:
    """One class name or background word: stripped, short, free of Hydra syntax.

    Raises:
        AppError: naming the entry and the characters it may not hold.
    """
    text = value.strip()
    bad = sorted(FORBIDDEN & set(text)) or (["a control character"]
                                           if any(ord(c) < 32 for c in text) else [])
    if bad:
        raise AppError(f"{field}: {text!r} contains {' '.join(bad)}; names may not contain "
                       f"{' '.join(sorted(FORBIDDEN))} (they are config syntax). Rename it.")
    if len(text) > MAX_NAME:
        raise AppError(f"{field}: {text[:20]!r}... is {len(text)} characters long; "
                       f"at most {MAX_NAME}.")
    return text


def parse_classes(text: str | None, limit: int = 200) -> list[str]:
    """``"cat, dog, grass"`` → ``["cat", "dog", "grass"]``.

    Raises:
        AppError: empty list, an empty entry, a repeated class, a name with config syntax, or more
            than ``limit`` classes.
    """
    from src.prompts.vocabulary import split_class_list

    text = (text or "").strip().strip(",").strip()
    if not text:
        raise AppError("Classes: the list is empty. Type the classes to look for, separated by "
                       "commas (e.g. cat, dog, grass), or choose a shipped vocabulary.")
    try:
        names = split_class_list(text, source="Classes")
    except ValueError as err:  # an empty entry (two commas) or a repeated name, both named
        raise AppError(str(err).replace("classes=", "Classes: ")) from None
    names = [check_text(n, "Classes") for n in names]
    if len(names) > limit:
        raise AppError(f"Classes: {len(names)} classes; this page labels at most {limit} "
                       "(max_classes). Split them, or use python -m src.predict.")
    return names


def parse_words(text: str | None) -> str | list[str] | None:
    """Background words: ``""`` → None, ``stuff`` / ``background`` as they are, else a list."""
    text = (text or "").strip()
    if not text:
        return None
    if text in ("stuff", "background"):
        return text
    words = [check_text(w, "Background words") for w in text.split(",")]
    if not all(words):
        raise AppError("Background words: an entry is empty (two commas in a row?).")
    return words


def hydra_item(value: str) -> str:
    """A string as a Hydra list item: bare when plain, else single-quoted."""
    return value if re.fullmatch(r"[A-Za-z_][\w.-]*", value) and value.lower() not in (
        "null", "true", "false", "none") else f"'{value}'"


def shell_quote(arg: str) -> str:
    """One command-line argument as a POSIX shell reads it back (double quotes when enough)."""
    if re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    if not set(arg) & set('"$`\\!'):
        return f'"{arg}"'
    return shlex.quote(arg)


def classes_arg(request: Request, limit: int = 200) -> str:
    """The ``classes=`` argument as a user types it (``classes=cat,dog``, ``classes=voc20``)."""
    if request.vocabulary != FREE_TEXT:
        if request.vocabulary not in vocabulary_choices():
            raise AppError(f"Vocabulary {request.vocabulary!r} is not shipped; choose one of "
                           f"{vocabulary_choices()}.")
        return f"classes={request.vocabulary}"
    names = parse_classes(request.classes, limit)
    if len(names) == 1:  # one bare name would be read as a vocabulary name or file
        return f"classes=[{hydra_item(names[0])}]"
    return "classes=" + ",".join(names)  # src.predict rewrites the comma form itself


def refine_group(key_smoothing: bool, prompt_denoising: bool) -> str:
    return {(False, False): "none", (True, False): "ks", (False, True): "pd",
            (True, True): "kspd"}[(bool(key_smoothing), bool(prompt_denoising))]


def override_key(arg: str) -> str:
    """``+refine.temperature=50`` → ``refine.temperature``."""
    return arg.partition("=")[0].lstrip("+~")


def predict_command(args: Sequence[str], image_names: Sequence[str], out: str = OUT) -> str:
    """``python -m src.predict images=... <args> out=...``: what the page ran, as a command."""
    if len(image_names) == 1:
        images = f"images={image_names[0]}"
    else:
        images = "images=[" + ",".join(hydra_item(n) for n in image_names) + "]"
    return " ".join(["python -m src.predict", *(shell_quote(a) for a in [images, *args,
                                                                          f"out={out}"])])


def task_overrides() -> list[str]:
    """The overrides ``python -m src.app`` was started with (empty outside ``@hydra.main``)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def app_keys() -> set[str]:
    """Top-level keys ``conf/app.yaml`` adds to ``conf/predict.yaml`` (the page's own)."""
    app = OmegaConf.load(Path(CONFIG_DIR) / "app.yaml")
    predict = OmegaConf.load(Path(CONFIG_DIR) / "predict.yaml")
    return {k for k in app if k != "defaults" and k not in predict}


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The server's overrides → (those every request's src.predict config starts from, the
    page's own and IO values by key). ``hydra.*`` settings concern the server's run only."""
    own, page = app_keys(), {}
    base = []
    for arg in overrides:
        key = override_key(arg)
        top = key.split(".")[0].split("/")[0]
        if top == "hydra":
            continue
        if top in own or key in IO_KEYS:
            page[key] = arg.partition("=")[2]
        else:
            base.append(arg)
    return base, page


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class Upload:
    """A checked input image: its file, the name the user knows it by, its output stem."""

    path: Path
    name: str
    stem: str
    size: tuple[int, int]  # (H, W)


def safe_stem(name: str, taken: set[str]) -> str:
    """A file stem with only ``[A-Za-z0-9_.-]`` (no path parts), unique among ``taken``."""
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem, flags=re.ASCII).strip("._")[:80] or "image"
    unique, k = stem, 2
    while unique in taken:
        unique, k = f"{stem}-{k}", k + 1
    taken.add(unique)
    return unique


def check_image(path: str | Path, roots: Sequence[Path], files: Sequence[Path],
                limits: Limits) -> tuple[Path, tuple[int, int]]:
    """An input of the page: inside its temporary folder (or a configured example), within the
    size limits, a readable image. Only the header is read here (a huge image is refused before
    it is decoded).

    Returns:
        (resolved path, (H, W)).

    Raises:
        AppError: the reason, naming the file by its own name and the limit's setting.
    """
    from PIL import Image

    resolved = Path(path).resolve()
    name = resolved.name
    inside = any(resolved.is_relative_to(root.resolve()) for root in roots)
    if not inside and resolved not in [f.resolve() for f in files]:
        raise AppError(f"{name}: not a file uploaded to this page; upload it again.")
    if not resolved.is_file():
        raise AppError(f"{name}: the upload is gone (the page keeps files for an hour); "
                       "upload it again.")
    megabytes = resolved.stat().st_size / 2**20
    if megabytes > limits.max_upload_mb:
        raise AppError(f"{name} is {megabytes:.1f} MB; this page takes files up to "
                       f"{limits.max_upload_mb:g} MB (max_upload_mb).")
    try:
        with Image.open(resolved) as image:
            width, height = image.size
    except Image.DecompressionBombError as err:
        raise AppError(f"{name} is too large to decode safely ({err}); this page takes images "
                       f"up to {limits.max_image_side} px a side (max_image_side).") from None
    except Exception as err:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError...
        raise AppError(f"{name}: cannot read this file as an image ({type(err).__name__}: "
                       f"{err}). Open it in an image viewer and save it again as PNG or "
                       "JPEG.") from None
    if max(width, height) > limits.max_image_side:
        raise AppError(f"{name} is {width}×{height} pixels; this page labels images up to "
                       f"{limits.max_image_side} px a side (max_image_side). Resize it, or use "
                       "python -m src.predict inference=slide, which takes any size.")
    return resolved, (height, width)


def gallery_paths(value: Any) -> list[str]:
    """A Gradio gallery value (paths, or (path, caption) pairs) → paths."""
    paths = []
    for item in value or []:
        if isinstance(item, (list, tuple)):
            item = item[0]
        if isinstance(item, dict):  # a FileData dict
            item = item.get("path")
        if item:
            paths.append(str(item))
    return paths


# --------------------------------------------------------------------------- results


@dataclass
class ImageResult:
    """One labelled image: its files (under the request's folder) and class areas."""

    name: str
    image: Path          # the input as uploaded
    labels: Path         # palette PNG, pixel = class index: src.predict's labels/<stem>.png
    overlay: Path        # legend overlay: src.predict's overlays/<stem>.png
    confidence: Path     # the top probability as a colour map (for the page)
    areas: dict[str, float]
    colours: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # of present classes


@dataclass
class LabelResult:
    """One request's outcome."""

    images: list[ImageResult]
    classes: list[str]
    command: str
    args: list[str]
    folder: Path
    seconds: float
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def downloads(self) -> list[str]:
        """Per image: ``<stem>_labels.png`` and ``<stem>_overlay.png`` (copies of the files
        src.predict writes, byte for byte)."""
        files = []
        for item in self.images:
            for kind, source in (("labels", item.labels), ("overlay", item.overlay)):
                target = self.folder / "downloads" / f"{item.labels.stem}_{kind}.png"
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
                files.append(str(target))
        return files


def area_rows(images: Sequence[ImageResult]) -> list[list[Any]]:
    """The area table: one row per (image, class present), largest first, in percent."""
    return [[item.name, name, round(100.0 * fraction, 2)]
            for item in images for name, fraction in item.areas.items()]


def legend_html(item: ImageResult) -> str:
    """The overlay's legend as HTML (readable whatever the image's size): colour, class, area."""
    import html

    rows = "".join(
        f'<span class="entry"><span class="swatch" style="background: rgb{item.colours[name]}">'
        f"</span>{html.escape(name)} <small>{100 * area:.1f}%</small></span>"
        for name, area in item.areas.items())
    return f'<div class="legend">{rows}</div>'


def confidence_image(confidence: np.ndarray) -> np.ndarray:
    """H×W top probabilities in [0, 1] → H×W×3 uint8 (viridis: dark = unsure, yellow = sure)."""
    from matplotlib import colormaps

    rgba = colormaps["viridis"](np.clip(confidence, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def disagreement(a: Path, b: Path) -> float:
    """Fraction of pixels whose class differs between two label PNGs of one image."""
    from PIL import Image

    with Image.open(a) as first, Image.open(b) as second:
        return float(np.mean(np.asarray(first) != np.asarray(second)))


# --------------------------------------------------------------------------- models


class ModelCache:
    """The models the page labels with, each built once and kept.

    The base teacher (one per weights: its config without the head) takes every last-block head
    by assignment; a frontier head's teacher (its config with the head) is kept beside it, one at
    a time; students are kept one at a time (loading a checkpoint is quick next to a CLIP).
    ``builds`` counts what was built, by kind.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.teachers: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self.students: OrderedDict[str, tuple] = OrderedDict()
        self.builds: Counter[str] = Counter()

    @staticmethod
    def teacher_key(cfg: DictConfig) -> tuple[str, str]:
        from src.models.frontier import FRONTIER_HEADS

        spec = to_plain(cfg.teacher)
        kind = "frontier" if spec.get("head") in FRONTIER_HEADS else "base"
        if kind == "base":  # the last-block heads are one model: the head is set per request
            spec.pop("head", None)
        return kind, json.dumps(spec, sort_keys=True, default=str)

    def teacher(self, cfg: DictConfig, progress: Callable[[float, str], Any] | None = None):
        """The teacher for ``cfg.teacher`` (built on first use, on ``device``)."""
        from src.builders import build_teacher

        key = self.teacher_key(cfg)
        if key in self.teachers:
            self.teachers.move_to_end(key)
            return self.teachers[key]
        for old in [k for k in self.teachers if k[0] == key[0]]:
            del self.teachers[old]  # one per kind: frees its memory before the next is built
        if progress:
            progress(0.05, f"building the {cfg.teacher.model_name} teacher (once)")
        log.info("building the %s teacher (%s, head %s)", cfg.teacher.model_name,
                 cfg.teacher.pretrained, cfg.teacher.head)
        torch.manual_seed(int(cfg.get("seed") or 0))  # random-init models: the same each time
        teacher = build_teacher(cfg).to(self.device)
        self.builds[key[0]] += 1
        self.teachers[key] = teacher
        return teacher

    def student(self, cfg: DictConfig, progress: Callable[[float, str], Any] | None = None):
        """(labeller, (mean, std)) of ``cfg.ckpt_path`` with ``cfg.classes`` / background."""
        key = json.dumps([str(cfg.ckpt_path), to_plain(cfg.get("classes")),
                          to_plain(cfg.get("background"))], default=str)
        if key not in self.students:
            self.students.clear()
            if progress:
                progress(0.05, f"loading {Path(str(cfg.ckpt_path)).name}")
            labeller, _, normalization = build_labeller(cfg)
            self.builds["student"] += 1
            self.students[key] = (labeller.to(self.device), normalization)
        return self.students[key]


# --------------------------------------------------------------------------- the app


class LabellingApp:
    """The page's function layer: settings in, labelled files out; no Gradio here.

    Args:
        cfg: the composed ``conf/app.yaml``.
        overrides: the overrides the server was started with (``python -m src.app ...``); the
            src.predict ones are every request's starting point.
        device: where to label (default: CUDA when available and ``trainer.accelerator`` allows).
    """

    def __init__(self, cfg: DictConfig, overrides: Sequence[str] = (),
                 device: str | torch.device | None = None) -> None:
        self.limits = Limits.from_cfg(cfg)
        if cfg.get("temp_dir"):
            Path(cfg.temp_dir).expanduser().mkdir(parents=True, exist_ok=True)
        temp = str(Path(cfg.temp_dir).expanduser()) if cfg.get("temp_dir") else None
        self.root = Path(tempfile.mkdtemp(prefix="maskclip-app-", dir=temp))
        for sub in ("uploads", "results", "examples"):
            (self.root / sub).mkdir()
        atexit.register(self.close)
        self.base, page = split_overrides(overrides)
        self.device = torch.device(device or _default_device(cfg))
        self.models = ModelCache(self.device)
        self.lock = threading.Lock()  # Gradio's queue runs one request; direct callers too
        self.notice = ""
        self.checkpoints = self._checkpoints(cfg, page.get("ckpt_path"))
        self._start_teacher(cfg)
        self.examples = self._examples(cfg)
        self.example_files = [] if cfg.get("examples") is None else list(self.examples)
        self.defaults = self._defaults(page)

    # ------------------------------------------------------------------ start-up
    def _checkpoints(self, cfg: DictConfig, ckpt_path: str | None) -> list[str]:
        paths = [str(p) for p in (to_plain(cfg.get("checkpoints")) or [])]
        if cfg.get("ckpt_path"):
            paths.insert(0, str(cfg.ckpt_path))
        out = []
        for path in dict.fromkeys(paths):
            resolved = Path(path).expanduser().resolve()
            if not resolved.is_file():
                raise FileNotFoundError(f"checkpoints: {resolved} does not exist; list the "
                                        "student checkpoints (.ckpt) the page should offer")
            out.append(str(resolved))
        return out

    def _start_teacher(self, cfg: DictConfig) -> None:
        """Build the configured teacher now (the first request is then quick); without its
        weights here, fall back to the world CLIP (``world_fallback``) and say so."""
        from src.models.clip_loading import WeightsUnavailableError

        try:
            teacher = self.models.teacher(self.compose(self.base))
        except (WeightsUnavailableError, FileNotFoundError) as err:
            if not cfg.get("world_fallback", True):
                raise
            teacher_keys = ("teacher", "prompts", "scale")
            self.base = [a for a in self.base
                         if override_key(a).split(".")[0].split("/")[0] not in teacher_keys
                         or override_key(a).startswith("teacher/head")]
            self.base += list(WORLD_OVERRIDES)
            self.notice = (
                "**No CLIP weights on this machine: running the offline world's CLIP.** It knows "
                "only the world's 12 classes (grass, water, sand, brick, sky, ball, star, heart, "
                "kite, box, ring, cloud); try it on the example scenes. For real images start "
                "the page with weights: `python -m src.app teacher.pretrained=/path/ViT-B-16.pt "
                f"teacher.quick_gelu=true`. (Why: {err})")
            log.warning("no weights for the configured teacher (%s); running the world CLIP "
                        "(teacher=world) instead", err)
            teacher = self.models.teacher(self.compose(self.base))
        self.base_cfg = self.compose(self.base)
        # The teacher/head option the server runs (an option may differ from the head it sets).
        heads = [a.partition("=")[2] for a in self.base if override_key(a) == "teacher/head"]
        self.base_head = heads[-1] if heads else str(self.base_cfg.teacher.head)
        self.model_name = teacher.model_name
        self.weights = teacher.spec.pretrained
        if self.model_name == "world-vit" and not self.notice:
            self.notice = ("The offline world's CLIP (`teacher=world`): it knows only the world's "
                           "12 classes; try it on the example scenes.")
        log.info("teacher %s (%s) on %s", self.model_name, self.weights, self.device)

    def _examples(self, cfg: DictConfig) -> list[str]:
        from PIL import Image

        from src.data.world import SPLIT_SEEDS, generate_scene

        if cfg.get("examples") is not None:
            files = [Path(p).expanduser().resolve() for p in to_plain(cfg.examples)]
            missing = [str(p) for p in files if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"examples: {missing} do not exist")
            return [str(p) for p in files]
        out = []
        for index in range(int(cfg.get("world_examples") or 0)):
            path = self.root / "examples" / f"world_test_{index:05d}.png"
            Image.fromarray(generate_scene(SPLIT_SEEDS["test"], index).image).save(path)
            out.append(str(path))
        return out

    def _defaults(self, page: dict[str, str]) -> Request:
        """The page's initial settings: the server's configuration, as composed."""
        cfg = self.base_cfg
        words = to_plain(cfg.background.words)
        classes, vocabulary = "", FREE_TEXT
        given = page.get("classes")
        if given:
            value = given.strip()
            if value in vocabulary_choices():
                vocabulary = value
            else:
                classes = ", ".join(v.strip(" '\"") for v in value.strip("[]").split(","))
        elif self.model_name == "world-vit":
            classes = ", ".join(load_classes("world").names)
        return Request(
            classes=classes, vocabulary=vocabulary,
            background_words=", ".join(words) if isinstance(words, list) else (words or ""),
            background_threshold=float(cfg.background.threshold or 0.0),
            head=self.base_head, key_smoothing=bool(cfg.refine.key_smoothing),
            prompt_denoising=bool(cfg.refine.prompt_denoising),
            pamr=cfg.postproc.kind == "pamr", inference=str(cfg.inference.mode),
            model=self.checkpoints[0] if page.get("ckpt_path") and self.checkpoints else TEACHER)

    def close(self) -> None:
        """Delete the page's temporary folder (uploads, examples, results)."""
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ settings → config
    def compose(self, args: Sequence[str]) -> DictConfig:
        """``conf/predict.yaml`` with ``args`` (src.predict's own rewriting of ``classes=a,b``).

        Raises:
            AppError: Hydra refused the overrides (its message).
        """
        from hydra.errors import HydraException

        from src.utils.experiments import compose_config

        try:
            return compose_config("predict", class_list_argv(list(args)))
        except (HydraException, ValueError) as err:
            raise AppError(f"these settings do not compose: {err}") from None

    def request_args(self, request: Request) -> list[str]:
        """The src.predict overrides (no ``images=``/``out=``) that label as ``request`` asks.

        The server's overrides come first; a setting the page changes replaces the server's
        override of it, and settings equal to the server's add nothing.
        """
        base_cfg, changes, drop = self.base_cfg, [], set()
        if request.model != TEACHER:
            if request.model not in self.checkpoints:
                raise AppError("Model: choose the teacher or one of the checkpoints the server "
                               "was started with (checkpoints=).")
            changes.append(f"ckpt_path={request.model}")
        else:
            if request.head not in head_choices():
                raise AppError(f"Head {request.head!r}: choose one of {head_choices()}.")
            if request.head != self.base_head:
                changes.append(f"teacher/head={request.head}")
                drop |= {"teacher/head", "teacher.head"}
            if (bool(request.key_smoothing), bool(request.prompt_denoising)) != (
                    bool(base_cfg.refine.key_smoothing), bool(base_cfg.refine.prompt_denoising)):
                changes.append("refine=" + refine_group(request.key_smoothing,
                                                        request.prompt_denoising))
                drop |= {"refine", "refine.key_smoothing", "refine.prompt_denoising"}
            if bool(request.pamr) != (base_cfg.postproc.kind == "pamr"):
                changes.append("postproc=" + ("pamr" if request.pamr else "none"))
                drop |= {"postproc", "postproc.kind"}
        if request.inference not in INFERENCE_MODES:
            raise AppError(f"Inference {request.inference!r}: choose whole or slide.")
        if request.inference != base_cfg.inference.mode:
            changes.append(f"inference={request.inference}")
            drop |= {"inference", "inference.mode"}
        words = parse_words(request.background_words)
        if words != to_plain(base_cfg.background.words):
            value = ("null" if words is None else words if isinstance(words, str)
                     else "[" + ",".join(hydra_item(w) for w in words) + "]")
            changes.append(f"background.words={value}")
            drop |= {"background", "background.words"}
        threshold = float(request.background_threshold or 0.0)
        if not 0.0 <= threshold < 1.0:
            raise AppError("Background threshold: give a probability in (0, 1), or 0 for none.")
        if (threshold or None) != base_cfg.background.threshold:
            changes.append("background.threshold=" + (f"{threshold:g}" if threshold else "null"))
            drop |= {"background", "background.threshold"}
        if request.model == TEACHER or request.classes.strip() or request.vocabulary:
            classes = [classes_arg(request, self.limits.max_classes)]
        else:
            classes = []  # a student with no classes given: its own
        base = [a for a in self.base if override_key(a) not in drop]
        return [*classes, *base, *changes]

    def check_config(self, cfg: DictConfig, request: Request) -> None:
        """The composed config holds what the page asked (a server override the page does not
        control, such as ``refine.key_smoothing=``, cannot silently win)."""
        if request.model != TEACHER:
            return
        from src.models.frontier import FRONTIER_HEADS
        from src.models.heads import HEADS

        # A head option is named after its head, but for variants (proxyclip_world: proxyclip).
        head = request.head if request.head in (*HEADS, *FRONTIER_HEADS) else cfg.teacher.head
        got = (cfg.teacher.head, bool(cfg.refine.key_smoothing),
               bool(cfg.refine.prompt_denoising), cfg.postproc.kind == "pamr",
               cfg.inference.mode)
        want = (head, bool(request.key_smoothing), bool(request.prompt_denoising),
                bool(request.pamr), request.inference)
        if got != want:
            raise AppError(f"the server's overrides {self.base} conflict with the page's "
                           f"settings (composed {got}, asked {want}); restart it without them.")

    # ------------------------------------------------------------------ inputs
    def check_uploads(self, paths: Sequence[str | Path]) -> list[Upload]:
        """Checked inputs, with unique output stems.

        Raises:
            AppError: no image, too many, or one that is not the page's, too large or unreadable.
        """
        if not paths:
            raise AppError("Images: add an image (upload, paste, or pick an example).")
        if len(paths) > self.limits.max_images:
            raise AppError(f"Images: {len(paths)} images; this page labels up to "
                           f"{self.limits.max_images} at a time (max_images).")
        taken: set[str] = set()
        uploads = []
        for path in paths:
            resolved, size = check_image(path, [self.root], [Path(p) for p in self.example_files],
                                         self.limits)
            uploads.append(Upload(resolved, resolved.name, safe_stem(resolved.name, taken),
                                  size))
        return uploads

    # ------------------------------------------------------------------ labelling
    def labeller(self, cfg: DictConfig, progress=None):
        """(DenseLabeller, (mean, std)) for a composed predict config: the cached model with
        this request's head, refinement, PAMR, inference and vocabulary set on it."""
        from src.models.frontier import is_text_dependent
        from src.models.inference import InferenceConfig
        from src.models.labeller import BackgroundConfig, DenseLabeller
        from src.models.postproc import PostprocConfig
        from src.models.refine import RefineConfig

        try:
            BackgroundConfig(**to_plain(cfg.get("background") or {}))  # a clear message early
            inference = InferenceConfig(**to_plain(cfg.inference))
        except (TypeError, ValueError) as err:
            raise AppError(str(err)) from None
        if cfg.get("ckpt_path"):
            labeller, normalization = self.models.student(cfg, progress)
            # The student is kept; the inference is this request's (a wrapper, no copy).
            return DenseLabeller(labeller.model, labeller.vocabulary, labeller.output_stride,
                                 inference, labeller.background_threshold), normalization
        teacher = self.models.teacher(cfg, progress)
        refine = RefineConfig(**to_plain(cfg.refine))
        if is_text_dependent(teacher.features.frontier) and (refine.key_smoothing
                                                            or refine.prompt_denoising):
            raise AppError(f"head={cfg.teacher.head!r} already refines its scores with its own "
                           "first pass; key smoothing and prompt denoising do not apply to it: "
                           "untick them.")
        if teacher.features.frontier is None:
            if cfg.teacher.head != "maskclip" and teacher.arch != "vit":  # as the constructor
                raise AppError(f"head={cfg.teacher.head!r} needs a ViT image tower; "
                               f"{teacher.model_name} is a ResNet: choose maskclip.")
            teacher.head = cfg.teacher.head
        teacher.refine = refine
        teacher.inference = inference
        teacher.postproc = PostprocConfig(**to_plain(cfg.get("postproc") or {}))
        if progress:
            progress(0.15, "text classifier")
        labeller, _, normalization = build_labeller(cfg, teacher=teacher)
        return labeller, normalization

    def label(self, paths: Sequence[str | Path], request: Request,
              progress: Callable[[float, str], Any] | None = None) -> LabelResult:
        """Label ``paths`` as ``request`` asks, writing what src.predict writes.

        Per image, under a fresh folder of the page's temporary folder: ``labels/<stem>.png``
        (palette PNG, pixel = class index) and ``overlays/<stem>.png`` through src.predict's
        ``PredictionWriter``, and ``confidence/<stem>.png`` for the page.

        Raises:
            AppError: bad settings or inputs, or a model that cannot be built here.
        """
        from src.callbacks.writers import PredictionWriter
        from src.data.images import ImageListDataset
        from src.models.clip_loading import WeightsUnavailableError
        from src.models.label_module import DenseLabelModule
        from src.utils.visualize import make_palette

        start = time.perf_counter()
        uploads = self.check_uploads(paths)
        args = self.request_args(request)
        with self.lock:  # Hydra's composition is global state too
            cfg = self.compose(args)
            self.check_config(cfg, request)
            try:
                labeller, (mean, std) = self.labeller(cfg, progress)
            except (WeightsUnavailableError, FileNotFoundError, ValueError) as err:
                raise AppError(str(err)) from None
            folder = self._result_folder()
            names = list(labeller.vocabulary.names)
            if len(names) > 255:
                raise AppError(f"{len(names)} classes do not fit a palette PNG (at most 255).")
            writer = PredictionWriter(folder, labeller.vocabulary, make_palette(len(names)), {},
                                      confidence=None, overlays=True)
            images = ImageListDataset([u.path for u in uploads], to_plain(cfg.get("scale")),
                                      mean, std, names=[u.stem for u in uploads])
            module = DenseLabelModule(labeller).to(self.device)
            results, skipped = [], []
            batch_size = max(1, int(cfg.get("batch_size") or 1))
            for first in range(0, len(images), batch_size):
                if progress:
                    progress(0.2 + 0.75 * first / len(images),
                             f"labelling image {first + 1} of {len(images)}")
                batch = [images[i] for i in range(first, min(first + batch_size, len(images)))]
                with torch.inference_mode():
                    items = module.predict_step(batch, first // batch_size)
                for item, upload in zip(items, uploads[first:first + batch_size]):
                    if "error" in item:
                        skipped.append(f"{upload.name}: cannot read this image; open it in an "
                                       "image viewer and save it again as PNG or JPEG.")
                        continue
                    record = writer.write_item(item)
                    view = folder / "confidence" / f"{upload.stem}.png"
                    _save_png(confidence_image(item["confidence"].numpy()), view)
                    results.append(ImageResult(
                        upload.name, upload.path, folder / "labels" / f"{upload.stem}.png",
                        folder / "overlays" / f"{upload.stem}.png", view, record["areas"],
                        {n: tuple(int(c) for c in writer.palette[names.index(n)])
                         for n in record["areas"]}))
        if not results:
            raise AppError("No image could be read: " + " ".join(skipped))
        labelled = [u.name for u in uploads if any(r.image == u.path for r in results)]
        notes = []
        if request.model != TEACHER:
            notes.append("A student has its own head and no refinement: head, key smoothing, "
                         "prompt denoising and PAMR do not apply to it.")
        return LabelResult(results, names, predict_command(args, labelled), args, folder,
                           time.perf_counter() - start, skipped, notes)

    def compare(self, path: str | Path, first: Request, second: Request,
                progress: Callable[[float, str], Any] | None = None
                ) -> tuple[LabelResult, LabelResult, float]:
        """The same image under two settings: (first, second, fraction of pixels that differ)."""
        step = (lambda lo: (lambda f, d: progress(lo + f / 2, d))) if progress else (
            lambda lo: None)
        a = self.label([path], first, step(0.0))
        b = self.label([path], second, step(0.5))
        return a, b, disagreement(a.images[0].labels, b.images[0].labels)

    def _result_folder(self) -> Path:
        results = self.root / "results"
        old = sorted(results.iterdir(), key=lambda p: p.stat().st_mtime)
        for folder in old[:max(0, len(old) - RESULTS_KEPT + 1)]:
            shutil.rmtree(folder, ignore_errors=True)
        folder = results / uuid.uuid4().hex[:12]
        folder.mkdir()
        return folder

    # ------------------------------------------------------------------ for the page
    def model_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs: the teacher, then the server's checkpoints."""
        teacher = f"teacher: {self.model_name} ({Path(str(self.weights)).name})"
        return [(teacher, TEACHER)] + [(f"student: {Path(p).parent.name}/{Path(p).name}", p)
                                       for p in self.checkpoints]

    def describe(self) -> str:
        from src.utils.config import PROJECT_ROOT

        weights = str(self.weights)
        if Path(weights).is_absolute() and Path(weights).is_relative_to(PROJECT_ROOT):
            weights = str(Path(weights).relative_to(PROJECT_ROOT))
        return (f"Model: **{self.model_name}** (`{weights}`) on {self.device.type}. "
                f"Started with: `{' '.join(self.base) or '(defaults)'}`.")


def _default_device(cfg: DictConfig) -> str:
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    return "cuda" if torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda") \
        else "cpu"


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# --------------------------------------------------------------------------- the page

CSS = """
#notice {border-left: 4px solid #f59e0b; padding-left: 0.6em;}
.result img {width: 100%; height: 100%; object-fit: contain;}
.legend .entry {display: inline-flex; align-items: center; margin: 0 0.9em 0.3em 0;}
.legend .swatch {width: 1em; height: 1em; margin-right: 0.35em; border: 1px solid #888;}
.legend small {margin-left: 0.3em; opacity: 0.7;}
#command textarea {font-family: ui-monospace, monospace; font-size: 0.85em;}
"""


def theme():
    """Gradio's default look with the system's fonts (its own would be fetched from the web)."""
    import gradio as gr

    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])


def _message(err: Exception) -> str:
    if isinstance(err, AppError):
        return str(err)
    log.exception("request failed")  # the traceback goes to the server's log, not the page
    return f"Labelling failed ({type(err).__name__}: {err}). The server's log has the details."


def build_ui(app: LabellingApp):
    """The Gradio page over ``app`` (not launched; see :func:`launch`)."""
    os.environ["GRADIO_TEMP_DIR"] = str(app.root / "uploads")  # uploads stay in the page's folder
    import gradio as gr

    d = app.defaults
    heads, vocabularies = head_choices(), vocabulary_choices()

    def settings(values: Sequence[Any]) -> Request:
        (classes, vocabulary, words, threshold, head, ks, pd, pamr, inference, model) = values
        return Request(classes or "", vocabulary or FREE_TEXT, words or "",
                       float(threshold or 0.0), head or d.head, bool(ks), bool(pd), bool(pamr),
                       inference or d.inference, model or TEACHER)

    def on_label(images, *values, progress=gr.Progress()):
        try:
            result = app.label(gallery_paths(images), settings(values),
                               lambda f, desc: progress(f, desc=desc))
        except Exception as err:  # noqa: BLE001 - every failure is a message on the page
            raise gr.Error(_message(err), duration=None, print_exception=False) from None
        # Keyed by output stem: unique even when two uploads share a file name.
        views = {item.labels.stem: [str(item.image), str(item.overlay), legend_html(item),
                                    str(item.confidence)]
                 for item in result.images}
        first = result.images[0].labels.stem
        status = (f"Labelled {len(result.images)} image(s) in {result.seconds:.1f} s: "
                  f"{len(result.classes)} classes.")
        for line in result.skipped:
            gr.Warning(line)
        status = " ".join([status, *result.notes, *(f"Skipped {s}" for s in result.skipped)])
        return (views, gr.update(choices=list(views), value=first, visible=len(views) > 1),
                *views[first], area_rows(result.images), result.downloads(), result.command,
                status)

    def on_show(views, name):
        shown = (views or {}).get(name, [None, None, "", None])
        if any(isinstance(p, str) and p.startswith("/") and not Path(p).is_file()
               for p in shown):
            gr.Warning("Those results were cleaned up meanwhile; press Label again.")
            return None, None, "", None
        return tuple(shown)

    def on_compare(images, *values, progress=gr.Progress()):
        shared, first, second = values[:5], values[5:10], values[10:15]
        (classes, vocabulary, words, threshold, model) = shared
        requests = [settings([classes, vocabulary, words, threshold, *side, model])
                    for side in (first, second)]
        try:
            paths = gallery_paths(images)
            if not paths:
                raise AppError("Images: add an image on the Label tab first.")
            a, b, differ = app.compare(paths[0], *requests,
                                       lambda f, desc: progress(f, desc=desc))
        except Exception as err:  # noqa: BLE001
            raise gr.Error(_message(err), duration=None, print_exception=False) from None
        status = (f"{Path(paths[0]).name}: {100 * differ:.1f}% of the pixels change class "
                  f"between the two settings.")
        return (str(a.images[0].overlay), str(b.images[0].overlay), legend_html(a.images[0]),
                legend_html(b.images[0]), a.command, b.command, status)

    def side_controls(head: str, ks: bool, pd: bool, pamr: bool, inference: str, suffix: str):
        head = gr.Dropdown(heads, value=head, label="Head", elem_id=f"head{suffix}")
        with gr.Row():
            ks = gr.Checkbox(ks, label="Key smoothing", elem_id=f"ks{suffix}")
            pd = gr.Checkbox(pd, label="Prompt denoising", elem_id=f"pd{suffix}")
            pamr = gr.Checkbox(pamr, label="PAMR", elem_id=f"pamr{suffix}")
        inference = gr.Radio(list(INFERENCE_MODES), value=inference, label="Inference",
                             info="whole image, or sliding windows (large images)",
                             elem_id=f"inference{suffix}")
        return [head, ks, pd, pamr, inference]

    with gr.Blocks(title="MaskCLIP: label your images", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## MaskCLIP: dense labels for your images, from free-text classes\n"
                    + app.describe())
        if app.notice:
            gr.Markdown(app.notice, elem_id="notice")
        views = gr.State({})
        with gr.Tab("Label"):
            with gr.Row():
                with gr.Column(scale=1):
                    images = gr.Gallery(
                        label=f"Images (upload or paste, up to {app.limits.max_images}, "
                              f"{app.limits.max_upload_mb:g} MB each)",
                        type="filepath", interactive=True, sources=["upload", "clipboard"],
                        file_types=["image"], columns=4, height=220, allow_preview=False,
                        object_fit="contain", elem_id="images")
                    if app.examples:
                        gr.Examples([[[p]] for p in app.examples], inputs=[images],
                                    label="Examples", examples_per_page=8)
                    classes = gr.Textbox(d.classes, label="Classes",
                                         placeholder="cat, dog, grass", elem_id="classes",
                                         info="comma-separated; each is one class")
                    vocabulary = gr.Dropdown(
                        [("free text (the box above)", FREE_TEXT)]
                        + [(v, v) for v in vocabularies],
                        value=d.vocabulary, label="or a shipped vocabulary",
                        elem_id="vocabulary")
                    with gr.Row():
                        words = gr.Textbox(d.background_words, label="Background words",
                                           placeholder="stuff, background, or a, b",
                                           elem_id="words")
                        threshold = gr.Slider(0.0, 0.95, value=d.background_threshold,
                                              step=0.05, label="Background threshold",
                                              info="0: off", elem_id="threshold")
                    model = gr.Dropdown(app.model_choices(), value=d.model, label="Model",
                                        elem_id="model")
                    teacher_side = side_controls(d.head, d.key_smoothing, d.prompt_denoising,
                                                 d.pamr, d.inference, "")
                    run = gr.Button("Label", variant="primary", elem_id="run")
                with gr.Column(scale=2):
                    status = gr.Markdown(elem_id="status")
                    shown = gr.Dropdown([], label="Showing", visible=False, elem_id="shown")
                    with gr.Row():
                        image_view = gr.Image(label="Image", type="filepath", interactive=False,
                                              format="png", height=340, elem_id="image-view",
                                              elem_classes="result")
                        overlay_view = gr.Image(label="Overlay", type="filepath",
                                                interactive=False, format="png", height=340,
                                                elem_id="overlay", elem_classes="result")
                    legend = gr.HTML(elem_id="legend")
                    with gr.Row():
                        confidence_view = gr.Image(
                            label="Confidence (top probability: dark unsure, yellow sure)",
                            type="filepath", interactive=False, format="png", height=280,
                            elem_id="confidence", elem_classes="result")
                        table = gr.Dataframe(headers=["image", "class", "area %"],
                                             datatype=["str", "str", "number"],
                                             label="Class areas", interactive=False,
                                             elem_id="areas")
                    downloads = gr.File(label="Downloads: label PNG (palette, pixel = class "
                                              "index) and overlay, per image",
                                        file_count="multiple", interactive=False,
                                        elem_id="downloads")
                    command = gr.Textbox(label="The same with src.predict", lines=2,
                                         interactive=False, buttons=["copy"], elem_id="command")
        with gr.Tab("Compare"):
            gr.Markdown("The first image of the Label tab, with its classes, background and "
                        "model, under two settings.")
            with gr.Row():
                with gr.Column():
                    gr.Markdown("**A**")
                    first = side_controls("maskclip", False, False, False, d.inference, "-a")
                with gr.Column():
                    gr.Markdown("**B**")
                    second = side_controls("naclip" if "naclip" in heads else d.head,
                                           False, False, False, d.inference, "-b")
            compare = gr.Button("Compare", variant="primary", elem_id="compare")
            compare_status = gr.Markdown(elem_id="compare-status")
            with gr.Row():
                with gr.Column():
                    overlay_a = gr.Image(label="A", type="filepath", interactive=False,
                                         format="png", height=340, elem_id="overlay-a",
                                         elem_classes="result")
                    legend_a = gr.HTML()
                with gr.Column():
                    overlay_b = gr.Image(label="B", type="filepath", interactive=False,
                                         format="png", height=340, elem_id="overlay-b",
                                         elem_classes="result")
                    legend_b = gr.HTML()
            with gr.Row():
                command_a = gr.Textbox(label="A with src.predict", lines=2, interactive=False,
                                       buttons=["copy"])
                command_b = gr.Textbox(label="B with src.predict", lines=2, interactive=False,
                                       buttons=["copy"])

        shared = [classes, vocabulary, words, threshold]
        run.click(on_label, [images, *shared, *teacher_side, model],
                  [views, shown, image_view, overlay_view, legend, confidence_view, table,
                   downloads, command, status],
                  concurrency_limit=1, concurrency_id="model", show_progress="full")
        shown.change(on_show, [views, shown], [image_view, overlay_view, legend, confidence_view],
                     concurrency_limit=None, show_progress="hidden")
        compare.click(on_compare, [images, *shared, model, *first, *second],
                      [overlay_a, overlay_b, legend_a, legend_b, command_a, command_b,
                       compare_status],
                      concurrency_limit=1, concurrency_id="model", show_progress="full")
    demo.queue(default_concurrency_limit=1, max_size=app.limits.queue_size)
    return demo


def launch(app: LabellingApp, demo, host: str = "127.0.0.1", port: int | None = None) -> str:
    """Start the page's server in a thread; returns its address (see ``demo.close()``)."""
    if not is_loopback(host):
        log.warning("host=%s: the page is served to the network, not only to this machine", host)
    _, url, _ = demo.launch(
        server_name=host, server_port=port, share=False, inbrowser=False,
        prevent_thread_lock=True, quiet=True, show_error=False, ssr_mode=False,
        mcp_server=False, pwa=False, enable_monitoring=False,
        max_file_size=int(app.limits.max_upload_mb * 2**20),
        allowed_paths=[str(app.root)], theme=theme(), css=CSS)
    return url


def serve(cfg: DictConfig) -> None:
    """``python -m src.app``: build the model, start the page, print its address, serve."""
    try:
        app = LabellingApp(cfg, task_overrides())
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    demo = build_ui(app)
    url = launch(app, demo, host=str(cfg.host), port=cfg.get("port"))
    print(f"MaskCLIP page: {url}  (Ctrl+C stops it)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl+C does: files removed
    try:
        demo.block_thread()
    finally:
        demo.close()
        app.close()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


main = command_line(serve, "app")


if __name__ == "__main__":
    main()
