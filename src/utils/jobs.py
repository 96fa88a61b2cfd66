"""Job bookkeeping of src.predict / src.label output folders: identity, resume, overwrite.

A run writes into ``out=`` through the writer callbacks (:mod:`src.callbacks.writers`); this
module is what happens around them, before any model is built and without Lightning: proving
``out`` writable, which images are finished (resume), ``job.json`` (what decides the labels)
and whether a re-run may resume the folder's job, or delete its outputs (``overwrite=true``).
The output layout both sides share (``.records/``, the copyable image suffixes) is defined here.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.prompts.vocabulary import ClassVocabulary
from src.utils.io import write_lines_atomic

RECORDS = ".records"
# Extensions the folder dataset reads back; other inputs are stored as converted PNGs.
COPYABLE = (".jpg", ".jpeg", ".png")


def code_version() -> str:
    """Package version plus ``git describe`` of the checkout, when there is one."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("maskclip-lightning")
    except PackageNotFoundError:
        text = "unknown"
    root = Path(__file__).resolve().parents[2]
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root,
                                   capture_output=True, text=True, timeout=5)
        if described.returncode == 0 and described.stdout.strip():
            text += f"+git.{described.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def check_writable(out: str | Path) -> Path:
    """Create ``out`` and prove it is writable, before any work starts.

    Raises:
        PermissionError: naming the folder and the fix.
    """
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"output folder {out} is not writable ({err.strerror or err}); "
                              "choose another with out=/path/to/folder") from err
    return out


def finished_stems(out: str | Path, kind: str) -> set[str]:
    """Stems whose outputs are complete: ``label`` needs image and mask, ``predict`` a record."""
    out = Path(out)
    if kind == "label":
        masks = {p.stem for p in (out / "masks").glob("*.png")}
        images = {p.stem for p in (out / "images").glob("*") if not p.name.startswith(".")}
        return masks & images
    done = set()
    for path in (out / RECORDS).glob("*.json"):
        try:
            if "error" not in json.loads(path.read_text(encoding="utf-8")):
                done.add(path.stem)
        except (OSError, ValueError):
            continue
    return done


def pending(names: Sequence[str], out: str | Path, kind: str) -> list[int]:
    """Indices of the images still to do (resume): those whose name is not finished."""
    done = finished_stems(out, kind)
    return [i for i, name in enumerate(names) if name not in done]


# --------------------------------------------------------------------------- job identity
#
# A re-run into the same ``out=`` resumes only the SAME job: ``job.json`` records what decides
# the labels (:func:`job_identity`), and :func:`check_job` compares it with the new run's before
# any model is built, refusing a different job field by field.

JOB_FILE = "job.json"
JOB_FORMAT = 1
#: Per-image output folders and what they hold (src.predict: labels, overlays, confidence;
#: src.label: masks, images).
_IMAGE_OUTPUTS = {"labels": (".png",), "overlays": (".png",), "confidence": (".npy", ".png"),
                  "masks": (".png",)}
_REPORT_FILES = ("summary.json", "report.json", "manifest.json", "classes.txt")
#: The fields that are not compared: a different code version alone is the same job.
_NOT_COMPARED = ("format", "code_version")
#: Option groups, compared option by option (one that only one side records is not compared).
_OPTION_FIELDS = ("head", "refine", "inference", "postproc", "background", "outputs")


class JobMismatchError(ValueError):
    """``out=`` holds the outputs of another job (or of an unidentifiable one)."""


def file_identity(path: str | Path) -> dict[str, Any]:
    """A weights/checkpoint file as its resolved path, size and modification time (ns).

    Not a content hash: large CLIP checkpoints would cost seconds to hash; the same triple is
    what :class:`src.models.clip_loading.ClipSpec` uses as the weights' cache identity.
    """
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError:
        return {"file": str(resolved), "size": None, "mtime_ns": None}
    return {"file": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _weights_identity(pretrained: Any, seed: Any) -> Any:
    """An open_clip tag (normalised as open_clip does), a file, or random init with its seed."""
    if pretrained in (None, "", "none", "None"):
        return {"random_init_seed": int(seed or 0)}
    text = str(pretrained)
    looks_like_file = (os.sep in text or text.startswith((".", "~"))
                       or text.lower().endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))
                       or Path(text).expanduser().exists())
    return file_identity(text) if looks_like_file else text.lower().replace("-", "_")


def job_identity(cfg: Any, vocabulary: ClassVocabulary | None, task: str) -> dict[str, Any]:
    """What decides the labels of a src.predict / src.label run: ``job.json``'s content.

    Computed from the config and the requested vocabulary alone (no model is built), so a
    mismatch fails fast. Fields: ``task`` (predict | label), ``classes`` and ``queries`` (the
    labels' class order and synonyms, background included; null for a student's own classes,
    then the checkpoint decides them), ``model`` (teacher model_name and model_config, or the
    student checkpoint path), ``weights`` (an open_clip tag, ``{file, size, mtime_ns}`` for a
    local file or checkpoint, ``{random_init_seed}`` for random init), ``head`` (teacher.head
    and its options keep_residual, keep_ffn, image_act, image_ln_eps, normalize, quick_gelu),
    ``prompts`` (templates), ``refine``, ``inference``, ``postproc``, ``background`` (words and
    threshold), ``threshold`` (src.label's ignore threshold), ``scale``, ``outputs``
    (src.predict's confidence and overlays) and ``code_version``, recorded but not compared.
    A student ignores the teacher's head, prompts, refine and postproc: they are null for it.

    Args:
        cfg: the composed predict or label config.
        vocabulary: the classes the labels index (after the background class is added), or
            None for a student checkpoint's own classes.
        task: ``"predict"`` or ``"label"``.
    """
    from src.utils.config import to_plain

    def plain(key: str) -> Any:
        return to_plain(cfg.get(key))

    student = bool(cfg.get("ckpt_path"))
    if student:
        model = {"kind": "student", "checkpoint": str(Path(str(cfg.ckpt_path)).expanduser()
                                                      .resolve())}
        weights: Any = file_identity(str(cfg.ckpt_path))
        head = prompts = refine = postproc = None
    else:
        teacher = cfg.teacher
        model = {"kind": "teacher", "model_name": teacher.get("model_name"),
                 "model_config": teacher.get("model_config")}
        weights = _weights_identity(teacher.get("pretrained"), cfg.get("seed"))
        head = {key: to_plain(teacher.get(key)) for key in
                ("head", "keep_residual", "keep_ffn", "image_act", "image_ln_eps", "normalize",
                 "quick_gelu")}
        prompts = to_plain(cfg.prompts.get("templates")) if cfg.get("prompts") else None
        refine = plain("refine")
        postproc = plain("postproc") or {"kind": "none"}
    background = plain("background") or {}
    identity = {
        "format": JOB_FORMAT,
        "task": task,
        "classes": list(vocabulary.names) if vocabulary is not None else None,
        "queries": ([list(q) for q in vocabulary.queries] if vocabulary is not None else None),
        "model": model,
        "weights": weights,
        "head": head,
        "prompts": prompts,
        "refine": refine,
        "inference": plain("inference"),
        "postproc": postproc,
        "background": {"words": background.get("words"),
                       "threshold": background.get("threshold")},
        "threshold": plain("threshold") if task == "label" else None,
        "scale": plain("scale"),
        "outputs": ({"confidence": plain("confidence"), "overlays": bool(cfg.get("overlays", True))}
                    if task == "predict" else None),
        "code_version": code_version(),
    }
    return json.loads(json.dumps(identity))  # as job.json reads back (tuples → lists)


def read_job(out: str | Path) -> dict[str, Any] | None:
    """``out/job.json``, or None when there is none (or it cannot be read)."""
    path = Path(out) / JOB_FILE
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return job if isinstance(job, dict) else None


def write_job(out: str | Path, identity: dict[str, Any]) -> None:
    """Write ``out/job.json`` atomically (untouched when it already holds exactly this)."""
    write_lines_atomic(Path(out) / JOB_FILE,
                       json.dumps(identity, indent=2, ensure_ascii=False).splitlines())


def _copied_images(out: Path, stems: set[str]) -> list[Path]:
    folder = out / "images"
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and p.stem in stems
            and p.suffix.lower() in COPYABLE]


def _record_stems(out: Path) -> set[str]:
    return {p.stem for p in (out / RECORDS).glob("*.json")}


def job_outputs(out: str | Path) -> list[Path]:
    """The per-image files src.predict / src.label wrote into ``out`` (what a resume keeps).

    Records, labels, overlays, confidence maps, masks and the images src.label copied beside its
    masks. ``job.json`` and the report files alone are not outputs: with no image done, a run
    starts fresh.
    """
    out = Path(out)
    found = sorted((out / RECORDS).glob("*.json"))
    for folder, suffixes in _IMAGE_OUTPUTS.items():
        if (out / folder).is_dir():
            found += sorted(p for p in (out / folder).iterdir()
                            if p.is_file() and p.suffix.lower() in suffixes
                            and not p.name.startswith("."))
    stems = _record_stems(out) | {p.stem for p in (out / "masks").glob("*.png")}
    return found + sorted(_copied_images(out, stems))


def remove_job_outputs(out: str | Path) -> int:
    """Delete what src.predict / src.label write into ``out`` and nothing else.

    That is ``.records/``, ``labels/*.png``, ``overlays/*.png``, ``confidence/*.npy|png``,
    ``masks/*.png``, the images src.label copied (``images/<stem>.jpg|jpeg|png`` of a mask or a
    record), ``job.json``, ``summary.json``, ``report.json``, ``manifest.json``, ``classes.txt``
    and our leftover temp files (``.<name>.<random>.tmp``); the folders are removed only if
    that leaves them empty.

    Returns:
        The number of files removed.
    """
    out = Path(out)
    doomed = job_outputs(out)
    doomed += [out / name for name in (JOB_FILE, *_REPORT_FILES) if (out / name).is_file()]
    temp = [out.glob(f".{name}.*.tmp") for name in (JOB_FILE, *_REPORT_FILES)]
    temp += [(out / "images").glob(f".*{ext}.*.tmp") for ext in COPYABLE]
    temp += [(out / folder).glob(".*.tmp") for folder in (RECORDS, *_IMAGE_OUTPUTS)]
    doomed += [p for found in temp for p in found if p.is_file()]
    for path in doomed:
        path.unlink(missing_ok=True)
    for folder in (RECORDS, "images", *_IMAGE_OUTPUTS):
        try:
            (out / folder).rmdir()
        except OSError:  # absent, or it holds something that is not ours
            pass
    return len(doomed)


def _legacy_settings(out: Path) -> tuple[str, dict[str, Any]] | None:
    """Settings of a folder written before job.json: manifest.json, summary.json, report.json."""
    for name in ("manifest.json", "summary.json", "report.json"):
        try:
            data = json.loads((out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        settings = data.get("settings", data) if isinstance(data, dict) else None
        if isinstance(settings, dict) and "classes" in settings:
            return name, settings
    return None


def _legacy_view(identity: dict[str, Any]) -> dict[str, Any]:
    """The new identity in the shape older code wrote its settings (keys it can be checked on);
    a value of ``...`` cannot be derived without building the model and is not compared."""
    model, weights, head = identity["model"], identity["weights"], identity["head"] or {}
    if isinstance(weights, dict):
        weights = weights.get("file")  # random init: None, as older code wrote it
    view = {
        "model": model["kind"], "model_name": model.get("model_name", ...),
        "checkpoint": model.get("checkpoint", ...), "weights": weights,
        "quick_gelu": ... if head.get("quick_gelu") is None else head["quick_gelu"],
        "head": head.get("head", ...), "prompts": identity["prompts"],
        "refine": identity["refine"], "inference": identity["inference"],
        "background": identity["background"], "scale": identity["scale"],
        "classes": identity["classes"], "queries": identity["queries"],
        "threshold": identity["threshold"],
    }
    if model["kind"] == "student":
        view["weights"] = view["prompts"] = view["refine"] = ...
        if identity["classes"] is None:
            view["classes"] = view["queries"] = ...
    return view


def _show(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _list_change(old: list, new: list) -> str:
    """What changed between two long class lists, in a line."""
    def unique(items: list) -> list:
        return list({json.dumps(x): x for x in items}.values())

    gone = unique([x for x in old if x not in new])
    added = unique([x for x in new if x not in old])
    parts = [f"{len(old)} → {len(new)} entries"]
    if gone:
        parts.append(f"only before: {_show(gone, 120)}")
    if added:
        parts.append(f"only now: {_show(added, 120)}")
    if not gone and not added:
        parts.append("same entries, another order")
    return "; ".join(parts)


def _differences(old: Any, new: Any, key: str, unchecked: list[str]) -> list[str]:
    """``key: old → new`` lines; option groups are compared one level down
    (``refine.key_smoothing``), any other field as a whole.

    An option only one side has (an option added or dropped by another code version) cannot be
    compared: it goes to ``unchecked`` instead, as a code version alone is not another job.
    """
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict) and key in _OPTION_FIELDS:
        lines = []
        for sub in dict.fromkeys([*old, *new]):
            if sub in old and sub in new:
                lines += _differences(old[sub], new[sub], f"{key}.{sub}", unchecked)
            else:
                unchecked.append(f"{key}.{sub}")
        return lines
    line = f"{key}: {_show(old)} → {_show(new)}"
    if isinstance(old, list) and isinstance(new, list) and len(line) > 300:
        line = f"{key}: {_list_change(old, new)}"
    return [line]


def _outputs_summary(out: Path, outputs: list[Path]) -> str:
    folders = sorted({p.relative_to(out).parts[0] + "/" for p in outputs})
    images = len({p.stem for p in outputs})
    return f"outputs of {images} image{'s' * (images != 1)} in {', '.join(folders)}"


_FRESH_START = ("To start fresh, choose a new out= folder, or pass overwrite=true to delete the "
                "files src.predict/src.label wrote there (.records/, labels/, overlays/, "
                "confidence/, masks/, the images src.label copied, job.json, summary.json, "
                "report.json, manifest.json, classes.txt; nothing else) and label again.")


def check_job(out: str | Path, identity: dict[str, Any], overwrite: bool = False,
              logger: Any = None) -> dict[str, Any] | None:
    """May a run with ``identity`` write into ``out``? Resume only the same job.

    An empty folder (no per-image outputs) starts fresh. Otherwise the folder's ``job.json`` (or,
    for folders written by older code, the settings in ``manifest.json`` / ``summary.json``) is
    compared field by field with ``identity``; a different code version alone is the same job
    (logged). With ``overwrite``, the outputs are deleted first (:func:`remove_job_outputs`).

    Returns:
        The stored job when this run resumes it, else None (a fresh start).

    Raises:
        JobMismatchError: a different job, naming every differing field (old → new) and how to
            start fresh; or outputs that no job.json or settings identify.
    """
    import logging

    log = logger or logging.getLogger(__name__)
    out = Path(out)
    outputs = job_outputs(out)
    if not outputs:
        return None
    stored = read_job(out)
    legacy = None if stored is not None else _legacy_settings(out)
    if overwrite:
        if stored is None and legacy is None and not (out / RECORDS).is_dir():
            raise JobMismatchError(
                f"out={out} holds {_outputs_summary(out, outputs)} but no job.json, "
                "manifest.json, summary.json or .records/ that shows src.predict/src.label wrote "
                "them, so overwrite=true does not delete them. Choose a new out= folder, or "
                "remove those files yourself.")
        removed = remove_job_outputs(out)
        log.warning("overwrite=true: removed %d files of the previous job in %s; starting fresh",
                    removed, out)
        return None
    if stored is not None:
        lines, unchecked = [], []
        for key in dict.fromkeys([*stored, *identity]):
            if key in _NOT_COMPARED:
                continue
            if key not in stored or key not in identity:
                unchecked.append(key)
            else:
                lines += _differences(stored[key], identity[key], key, unchecked)
        source = f"{out / JOB_FILE}"
    elif legacy is not None:
        name, settings = legacy
        view = _legacy_view(identity)
        lines, unchecked = [], []
        for key, new in view.items():
            if key not in settings or new is ...:
                unchecked.append(key)
                continue
            old = settings[key]
            if key == "checkpoint" and old is not None:
                old = str(Path(str(old)).expanduser().resolve())
            lines += _differences(old, new, key, unchecked)
        unchecked += [k for k in ("postproc", "outputs") if identity.get(k) is not None]
        unchecked += [f"head.{k}" for k in (identity["head"] or {}) if k not in ("head",
                                                                                  "quick_gelu")]
        source = f"{out / name} (written before job.json existed)"
        stored = {"code_version": settings.get("code_version", "unknown (before job.json)")}
    else:
        raise JobMismatchError(
            f"out={out} holds {_outputs_summary(out, outputs)} but no job.json (nor the settings "
            "of older versions in manifest.json or summary.json), so it cannot tell whether "
            "they were made by this job; it is not resumed. " + _FRESH_START)
    if lines:
        raise JobMismatchError(
            f"out={out} holds another job's {_outputs_summary(out, outputs)} ({source}); "
            "resuming would mix labels where the same value means different things, so it is "
            "refused. These settings differ (old → new):\n  " + "\n  ".join(lines) + "\n"
            + _FRESH_START)
    if unchecked:
        log.warning("resuming in %s: %s does not record %s; assuming they are unchanged", out,
                    source, ", ".join(unchecked))
    old_version, new_version = stored.get("code_version"), identity.get("code_version")
    if old_version != new_version:
        log.warning("resuming a job written by code version %s with %s", old_version,
                    new_version)
    return stored
