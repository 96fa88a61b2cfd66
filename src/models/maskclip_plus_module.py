"""MaskCLIPPlusLitModule: a DeepLab student trained on a frozen teacher's online pseudo-labels.

MaskCLIP §4 (MaskCLIP+), official behaviour in chongzhou96/MaskCLIP
mmseg/models/decode_heads/maskclip_plus_head.py (``MaskClipPlusHead``) and configs/maskclip_plus/:
- Annotation-free: every non-void pixel is pseudo-labelled by the teacher among all classes,
  for the whole run. Void pixels (255) stay ignored.
- Transductive zero-shot: seen-class ground truth is kept. Unseen pixels are pseudo-labelled
  among the unseen classes, by the teacher for the first ``guided_steps`` iterations (round 0)
  and by the student itself afterwards (self-training).
- Supervised: ground truth only, e.g. for exported pseudo-label datasets.

The teacher is frozen for real (``src.models.frozen``): it is in neither ``parameters()`` (and
so the optimizer and DDP) nor the checkpoint, it stays in eval mode and moves with the module. It
is rebuilt from its spec, which the checkpoint stores, and it runs under ``no_grad``. The
self-training snapshot (``self_training.mode=rounds``) is held the same way but saved, so that a
resumed run labels with the same weights.

A trained student alone, for evaluation and prediction, is :func:`load_student`'s
``TrainedStudent``; :class:`StudentTestModule` runs it in ``Trainer.test``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.metrics.segmentation import SegmentationIoU
from src.models.frozen import FrozenModule, FrozenSlot
from src.models.losses import LOSS_AVERAGES, segmentation_cross_entropy
from src.models.pseudo_labels import IGNORE_INDEX, UNLABELED, assign_pseudo_labels, hide_classes
from src.models.student import (SegStudent, TrainedStudent, canonical_student_config,
                                logits_at_size, rename_legacy_keys)
from src.models.teacher import MaskCLIPTeacher, renormalize
from src.prompts.vocabulary import ClassVocabulary, load_vocabulary
from src.utils.precision import gpu_autocast

log = logging.getLogger(__name__)

Setting = Literal["annofree", "zeroshot", "supervised"]
SelfTrainingMode = Literal["online", "rounds"]
TestResize = Literal["direct", "two_step"]
PHASES = {"guided": 0, "self_training": 1, "supervised": 2}
#: What a checkpoint must hold for ``src.train ckpt_path=`` to resume from it.
TRAINING_CHECKPOINT_KEYS = ("state_dict", "maskclip_plus", "global_step", "optimizer_states",
                            "loops")


def poly_lr_factor(step: int, max_steps: int, base_lr: float, min_lr: float,
                   power: float = 0.9) -> float:
    """mmseg's poly schedule as a factor of base_lr: ((1 - t/T)^p (base - min) + min) / base."""
    progress = min(step, max_steps) / max(1, max_steps)
    return ((base_lr - min_lr) * (1 - progress) ** power + min_lr) / base_lr


class StudentEvalSteps:
    """The validation/test steps of a student, shared by ``MaskCLIPPlusLitModule`` and
    ``StudentTestModule``: per image, the student's logits at the ground truth's size
    (``test_resize``) into an IoU metric; at the end of a test, the per-class table and
    ``test_summary`` and ``test_per_class`` (in percent).

    The LightningModule it is mixed into has ``student`` (a ``SegStudent``), ``vocabulary``,
    ``test_resize`` and ``test_iou``.
    """

    per_class_table = "per_class_iou"  # the CSV the next test writes (src.eval: per corruption)

    student: SegStudent
    vocabulary: ClassVocabulary
    test_resize: str
    test_iou: SegmentationIoU

    def student_logits_at(self, image: Tensor, output_size: Sequence[int]) -> Tensor:
        """1×3×h×w normalised image → 1×C×H×W student logits at the original size
        (:func:`src.models.student.logits_at_size`)."""
        return logits_at_size(self.student, image, output_size, self.test_resize)

    def _eval_step(self, batch: dict[str, list], metric: SegmentationIoU) -> None:
        for image, mask in zip(batch["image"], batch["mask"]):
            logits = self.student_logits_at(image[None].to(self.device), mask.shape[-2:])
            metric.update(logits[0].argmax(0), mask.to(self.device))

    def test_step(self, batch: dict[str, list], batch_idx: int) -> None:
        self._eval_step(batch, self.test_iou)

    def _log_summary(self, stage: str, metric: SegmentationIoU) -> dict[str, float]:
        summary = {k: 100 * v for k, v in metric.summary().items()}
        for key, value in summary.items():
            self.log(f"{stage}/{key}", value)
        metric.reset()
        return summary

    def on_test_epoch_end(self) -> None:
        from src.utils.reporting import iou_by_class, report_per_class

        iou = self.test_iou.iou().cpu()
        report_per_class(self.trainer, self.loggers, self.vocabulary.names, iou,
                         self.test_iou.unseen, table=self.per_class_table)
        self.test_per_class = iou_by_class(self.vocabulary.names, iou)  # as the teacher reports
        self.test_summary = self._log_summary("test", self.test_iou)


def _renamed_snapshot_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook: checkpoints written before the self-training snapshot was
    called so hold it as ``labeller.*``; they load into ``snapshot.*``."""
    old, new = prefix + "labeller.", prefix + "snapshot."
    if any(key.startswith(old) for key in state_dict):
        renamed = {(new + key[len(old):] if key.startswith(old) else key): value
                   for key, value in state_dict.items()}
        state_dict.clear()
        state_dict.update(renamed)


class MaskCLIPPlusLitModule(StudentEvalSteps, L.LightningModule):
    """Teacher + student training with explicit phases and self-training rounds.

    Args:
        teacher: the frozen MaskCLIP teacher (None for ``setting=supervised``).
        student: a callable building the student from C×D class embeddings (a Hydra partial).
        vocabulary: dataset vocabulary (names in class-index order).
        templates: prompt templates for the teacher's text classifier.
        setting: ``annofree``, ``zeroshot`` or ``supervised``.
        unseen: unseen class indices (zero-shot).
        background_index: index of a background class that has no text prompt (VOC-21,
            Context-60); it gets the student's learnable background embedding.
        max_steps: total iterations (the LR schedule and the self-training rounds need it).
        guided_steps: iterations in round 0, the teacher-guided phase (zero-shot: 10%; the
            official ``start_clip_guided=(1, T/10 - 1)`` is T/10 - 1 of them).
        self_training: ``{"mode": "online" | "rounds", "rounds": N}``.
        lr, momentum, weight_decay, min_lr, power: SGD with poly LR (official schedule).
        num_overlays: kept in the hyperparameters (and so the checkpoint) only; the validation
            panels are logged by ``src.callbacks.panels.ValidationPanels`` (``max_images``),
            which asks :meth:`panel_predictions` for them.
        report_unseen: unseen class indices for the seen/unseen/hIoU report (any setting).
        student_cfg: the student's Hydra config, kept in the checkpoint so that it alone can
            rebuild the student (``load_student``); saved with the current key names
            (``decoder``, ``decoder_init``, ``decoder_dilations``: ``canonical_student_config``).
        image_mean, image_std: the input normalisation the student was trained with (saved so
            that evaluation normalises the same way).
        class_embeddings: C×D text embeddings for a student without a teacher (a checkpoint's).
        loss_average: ``valid_pixels`` (mean over labelled pixels) or ``all_pixels`` (mmseg
            0.20.2, the official code: ignored pixels count as zero); see
            ``segmentation_cross_entropy``.
        test_resize: how the student's stride-8 logits reach the ground truth's size in
            validation and test: ``direct`` (one bilinear resize) or ``two_step`` (to the network
            input, then to the original size, as mmseg's ``whole_inference``).

    Frozen modules (``src.models.frozen``): ``teacher`` (not saved) and, in
    ``self_training.mode=rounds``, ``snapshot``, the student frozen at the end of the previous
    round that labels the current one (saved with the checkpoint, with ``snapshot_round``).
    """

    teacher = FrozenSlot()
    snapshot = FrozenSlot()

    def __init__(
        self,
        teacher: MaskCLIPTeacher | None,
        student: Callable[..., SegStudent],
        vocabulary: ClassVocabulary | str | Sequence[str],
        templates: str | Sequence[str] = "imagenet85",
        setting: Setting = "annofree",
        unseen: Sequence[int] | None = None,
        background_index: int | None = None,
        max_steps: int = 2000,
        guided_steps: int | None = None,
        self_training: dict[str, Any] | None = None,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        min_lr: float = 1e-4,
        power: float = 0.9,
        num_overlays: int = 0,
        report_unseen: Sequence[int] | None = None,
        student_cfg: dict[str, Any] | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        class_embeddings: Tensor | None = None,
        loss_average: str = "valid_pixels",
        test_resize: TestResize = "direct",
    ) -> None:
        super().__init__()
        if test_resize not in ("direct", "two_step"):
            raise ValueError(f"test_resize={test_resize!r}: choose direct or two_step")
        if loss_average not in LOSS_AVERAGES:
            raise ValueError(f"loss.average={loss_average!r}: choose one of {list(LOSS_AVERAGES)}")
        self.loss_average = loss_average
        self.test_resize = test_resize
        if setting not in ("annofree", "zeroshot", "supervised"):
            raise ValueError(f"setting must be annofree, zeroshot or supervised, got {setting!r}")
        if setting == "zeroshot" and not unseen:
            raise ValueError("setting=zeroshot needs unseen classes (data.zero_shot_split)")
        if setting != "supervised" and teacher is None:
            raise ValueError(f"setting={setting} needs a teacher")
        self.vocabulary = load_vocabulary(vocabulary)
        self.setting = setting
        self.unseen = sorted(unseen) if unseen else None
        self.background_index = background_index
        self.max_steps = max_steps
        self.guided_steps = max_steps if guided_steps is None else int(guided_steps)
        if setting == "annofree":
            self.guided_steps = max_steps  # the teacher guides the whole run (official)
        st = dict(self_training or {})
        self.self_training_mode: SelfTrainingMode = st.get("mode", "online")
        self.self_training_rounds = int(st.get("rounds", 1))
        if self.self_training_mode not in ("online", "rounds"):
            raise ValueError("self_training.mode must be 'online' or 'rounds'")
        self.optim_cfg = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                              min_lr=min_lr, power=power)

        # The teacher's vocabulary is the dataset's without the prompt-less background class.
        self._text_classes = [c for c in range(self.vocabulary.num_classes)
                              if c != background_index]
        self.teacher = None if teacher is None else FrozenModule(teacher)  # frozen, not saved
        if teacher is not None:
            teacher.set_vocabulary(self._teacher_vocabulary(), templates)
            text_emb = teacher.class_embeddings.detach().cpu()
        elif class_embeddings is not None:
            text_emb = class_embeddings
        else:
            raise ValueError("without a teacher, the student needs class_embeddings")
        self.student: SegStudent = student(class_embeddings=text_emb,
                                           background=background_index is not None)
        if background_index not in (None, 0):
            raise ValueError("the background class must be class 0 (as in VOC-21 / Context-60)")
        self.snapshot = None  # frozen student copy in self_training=rounds
        self.snapshot_round = -1
        if student_cfg is not None:  # old key names (head, head_init, ...) → the current ones
            student_cfg = canonical_student_config(student_cfg)
        self.save_hyperparameters(ignore=["teacher", "student", "vocabulary",
                                          "class_embeddings"])
        self.register_load_state_dict_pre_hook(_renamed_snapshot_keys)
        num_classes = self.vocabulary.num_classes
        report = report_unseen if report_unseen is not None else self.unseen
        self.val_iou = SegmentationIoU(num_classes, report)
        self.test_iou = SegmentationIoU(num_classes, report)

    # ------------------------------------------------------------------ teacher handling
    def _teacher_vocabulary(self) -> ClassVocabulary:
        v = self.vocabulary
        keep = self._text_classes
        return ClassVocabulary(tuple(v.names[c] for c in keep), tuple(v.queries[c] for c in keep),
                               v.source)

    def _place_teacher(self) -> None:
        """Put the teacher on this module's device. Lightning's device placement already moves
        it with the module (a frozen module follows ``.to``); this is for callers outside it."""
        if self.teacher is not None:
            self.teacher.to(self.device)

    # ------------------------------------------------------------------ phases
    def phase_at(self, step: int) -> str:
        if self.setting == "supervised":
            return "supervised"
        return "guided" if step < self.guided_steps else "self_training"

    def round_at(self, step: int) -> int:
        """Round 0 is the guided phase; later rounds split the remaining steps equally."""
        if step < self.guided_steps or self.setting != "zeroshot":
            return 0
        if self.self_training_mode == "online":
            return 1
        length = max(1, math.ceil((self.max_steps - self.guided_steps)
                                  / self.self_training_rounds))
        return min(self.self_training_rounds, 1 + (step - self.guided_steps) // length)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        step = self.global_step
        round_ = self.round_at(step)
        if self.self_training_mode == "rounds" and round_ >= 1 and round_ != self.snapshot_round:
            # Round r is labelled by the student frozen at the end of round r-1.
            self.snapshot = FrozenModule(copy.deepcopy(self.student), persistent=True)
            self.snapshot_round = round_
            log.info("step %d: self-training round %d starts; pseudo-labels from a frozen "
                     "snapshot of the student", step, round_)

    # ------------------------------------------------------------------ targets
    def _candidates(self) -> Tensor:
        if self.setting == "zeroshot":
            return torch.tensor(self.unseen, device=self.device)
        return torch.tensor(self._text_classes, device=self.device)

    @torch.no_grad()
    def teacher_scores(self, images: Tensor) -> Tensor:
        """B×C×H×W teacher probabilities in *dataset* class indices (background column = -inf)."""
        mean, std = self.hparams.get("image_mean"), self.hparams.get("image_std")
        if mean is not None and std is not None:  # the data's statistics → the teacher's own
            images = renormalize(images, (mean, std),
                                 (self.teacher.image_mean, self.teacher.image_std))
        with gpu_autocast(self.device, self.teacher.autocast_dtype):
            probs = self.teacher(images).float()
        finite = torch.isfinite(probs)
        if not bool(finite.all()):
            self._diverged(f"the teacher's scores have {int((~finite).sum())} non-finite values "
                           f"of {finite.numel()} (teacher {self.teacher.model_name}, weights "
                           f"{self.teacher.spec.pretrained or 'random init'})", teacher=True)
        if self.background_index is None:
            return probs
        pad = probs.new_full((probs.shape[0], 1, *probs.shape[2:]), float("-inf"))
        return torch.cat([pad, probs], dim=1)

    @property
    def suppressed_classes(self) -> list[int] | None:
        """The classes whose pixels get pseudo-labels, as the official
        ``LoadAnnotations(suppress_labels=...)`` lists them: every class annotation-free, the
        unseen ones in zero-shot, none on ground truth (the crop rule needs them)."""
        if self.setting == "annofree":
            return list(range(self.vocabulary.num_classes))
        return list(self.unseen) if self.setting == "zeroshot" else None

    def make_targets(self, images: Tensor, mask: Tensor, student_logits: Tensor
                     ) -> tuple[Tensor, dict[str, float]]:
        """Training targets for this step and statistics about the pseudo-labels."""
        if self.setting == "supervised":
            return mask, {}
        hidden = None if self.setting == "annofree" else self.unseen
        target = hide_classes(mask, hidden)
        unlabeled = target == UNLABELED
        stats: dict[str, float] = {}
        if unlabeled.any():
            phase = self.phase_at(self.global_step)
            if phase == "guided":
                scores = self.teacher_scores(images)
            elif self.self_training_mode == "rounds":
                with torch.no_grad():
                    scores = self.snapshot(images)
            else:  # online: the current student labels itself (official behaviour)
                scores = student_logits.detach()
            target = assign_pseudo_labels(target, scores, self._candidates())
            valid = mask != IGNORE_INDEX
            stats["pseudo_coverage"] = float(unlabeled.sum() / valid.sum().clamp(min=1))
            stats["pseudo_agreement"] = float((target[unlabeled] == mask[unlabeled]).float()
                                              .mean())
        return target, stats

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        images, mask = batch["image"], batch["mask"]
        logits = self.student(images)
        target, stats = self.make_targets(images, mask, logits)
        logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear",
                               align_corners=False)
        loss = segmentation_cross_entropy(logits, target, IGNORE_INDEX, self.loss_average)
        # A batch without a labelled pixel gives a loss of 0, not NaN: only divergence stops here.
        # The scalar alone is checked each step (non-finite logits make the loss non-finite);
        # the logits are counted only to word the error.
        if not bool(torch.isfinite(loss)):
            bad = int((~torch.isfinite(logits)).sum())
            self._diverged(f"the loss is {float(loss):g} "
                           + (f"and the student logits have {bad} non-finite values of "
                              f"{logits.numel()}" if bad else "while the student logits are finite")
                           + self._nonfinite_weights_note())
        step = self.global_step
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/phase", float(PHASES[self.phase_at(step)]))
        self.log("train/round", float(self.round_at(step)))
        skipped = getattr(self.trainer.datamodule, "num_skipped_files", 0)
        if skipped:  # data.skip_unreadable=true: unreadable files replaced so far (this rank)
            self.log("train/skipped_files", float(skipped))
        for key, value in stats.items():
            self.log(f"train/{key}", value)
        return loss

    # ------------------------------------------------------------------ divergence
    def _nonfinite_student_weights(self) -> list[str]:
        return [k for k, v in self.student.state_dict().items()
                if v.is_floating_point() and not bool(torch.isfinite(v).all())]

    def _nonfinite_weights_note(self) -> str:
        bad = self._nonfinite_student_weights()
        if bad:
            return (f"; {len(bad)} student weight/statistics tensors are non-finite (e.g. "
                    f"{bad[0]}): the weights have blown up")
        embeddings = getattr(self.student, "class_embeddings", None)
        if isinstance(embeddings, Tensor) and not bool(torch.isfinite(embeddings).all()):
            return "; the class embeddings from the teacher's text tower are non-finite"
        return "; the student weights are still finite (the input or the targets are not?)"

    def _diverged(self, what: str, teacher: bool = False) -> None:
        """Stop training: raise a FloatingPointError saying where, what and what to try."""
        step = self.global_step
        trainer = self._trainer
        where = "training"
        if trainer is not None and (trainer.sanity_checking or trainer.validating):
            where = "validation"
        phase = self.phase_at(step).replace("_", "-")
        hints = ["check data.normalize against the teacher's teacher.normalize",
                 "check the teacher weights (teacher.pretrained)",
                 "on a GPU, run the teacher in full precision with teacher.autocast_dtype=float32"]
        if not teacher:
            hints.insert(0, f"lower optim.lr (now {self.optim_cfg['lr']:g})")
        raise FloatingPointError(
            f"training diverged at global step {step} ({phase} phase, round "
            f"{self.round_at(step)}, during {where}): {what}. Stopped so that no checkpoint "
            f"with non-finite weights is written. Try: {'; '.join(hints)}.")

    def validation_step(self, batch: dict[str, list], batch_idx: int) -> None:
        self._eval_step(batch, self.val_iou)

    # ------------------------------------------------------------------ panels
    @property
    def panel_normalization(self) -> tuple[Sequence[float], Sequence[float]]:
        """(mean, std) of the validation images, to show them in panels (src.callbacks.panels)."""
        return (self.hparams.get("image_mean") or (0.0, 0.0, 0.0),
                self.hparams.get("image_std") or (1.0, 1.0, 1.0))

    @torch.no_grad()
    def panel_predictions(self, image: Tensor, size: Sequence[int]) -> dict[str, Tensor]:
        """The panel columns of one validation image (src.callbacks.panels): the teacher's and
        the student's labels at the ground truth's size ``size`` (no teacher: the student's)."""
        image = image[None].to(self.device)
        predictions = {}
        if self.teacher is not None:
            self._place_teacher()
            teacher = F.interpolate(self.teacher_scores(image), size=size, mode="bilinear",
                                    align_corners=False)
            predictions["teacher"] = teacher[0].argmax(0)
        predictions["student"] = self.student_logits_at(image, size)[0].argmax(0)
        return predictions

    def on_validation_epoch_end(self) -> None:
        self._log_summary("val", self.val_iou)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        cfg = self.optim_cfg
        optimizer = torch.optim.SGD(self.student.parameters(), lr=cfg["lr"],
                                    momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: poly_lr_factor(step, self.max_steps, cfg["lr"],
                                                   cfg["min_lr"], cfg["power"]))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule,
                                                         "interval": "step",
                                                         # LearningRateMonitor logs it
                                                         "name": "train/lr"}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        bad = self._nonfinite_student_weights()
        if bad:  # an update blew the weights up after the last loss check: do not save them
            self._diverged(f"{len(bad)} student weight tensors became non-finite (e.g. {bad[0]}) "
                           "and the checkpoint about to be written would hold them")
        checkpoint["maskclip_plus"] = {
            "snapshot_round": self.snapshot_round,
            "vocabulary": {"names": list(self.vocabulary.names),
                           "queries": [list(q) for q in self.vocabulary.queries]},
            "teacher": None if self.teacher is None else {
                "model_name": self.teacher.model_name,
                "pretrained": self.teacher.spec.pretrained,
                "quick_gelu": self.teacher.spec.quick_gelu,
                "image_numerics": dict(self.teacher.image_numerics),
                "normalize": self.teacher.normalize,
                "head": self.teacher.head,
                "refine": vars(self.teacher.refine),
                "postproc": vars(self.teacher.postproc),
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("maskclip_plus", {})
        # Checkpoints written before the rename call the round labeller_round.
        self.snapshot_round = state.get("snapshot_round", state.get("labeller_round", -1))
        if any(k.startswith(("snapshot.", "labeller.")) for k in checkpoint["state_dict"]):
            # Recreate the frozen copy so its saved weights load: resume continues the round.
            self.snapshot = FrozenModule(copy.deepcopy(self.student), persistent=True)


def student_checkpoint_problem(weights, training: bool = False) -> str | None:
    """Why a read file (``weights_files.WeightsFile``) is no student checkpoint, as a predicate
    (``is not a MaskCLIP+ student checkpoint (src.train): it is ...``); None when it is one.

    Args:
        training: also require the training state that resuming needs
            (``TRAINING_CHECKPOINT_KEYS``: optimizer, loops, global step).
    """
    from src.models.clip_loading import describe_weights

    obj = weights.obj
    kind, what, _ = describe_weights(weights)
    if (kind != "maskclip_plus" or not isinstance(obj, dict)
            or not (obj.get("hyper_parameters") or {}).get("student_cfg")):
        return f"is not a MaskCLIP+ student checkpoint (src.train): it is {what}"
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not any(str(k).startswith("student.") for k in state):
        return f"is {what} without student weights (no student.* entries in its state_dict)"
    if training:
        missing = [k for k in TRAINING_CHECKPOINT_KEYS if k not in obj]
        if missing:
            return (f"is {what} without the training state that resuming needs (no "
                    f"{', '.join(missing)}; saved with save_weights_only=True?)")
    return None


def read_student_checkpoint(ckpt_path: str | Path, *, key: str = "ckpt_path",
                            training: bool = False, mmap: bool = False,
                            fix: str = "pass a checkpoint src.train wrote "
                                       "(<run>/checkpoints/last.ckpt or step*.ckpt; when a run "
                                       "was killed while writing one, the one before is whole)"
                            ) -> dict:
    """Load a checkpoint src.train wrote (``torch.load(weights_only=True)``), or say why not.

    Args:
        key: the setting that named the file, for the messages.
        training: require the training state too (``src.train ckpt_path=``).
        mmap: memory-map the tensors (shapes and metadata at once, data on first touch).
        fix: what to pass instead, ending the messages.

    Raises:
        FileNotFoundError: no such file.
        ValueError: empty, truncated or unreadable, or not a (complete) MaskCLIP+ checkpoint;
            the message names the file, its size and what it holds.
    """
    from src.models.weights_files import UnreadableWeightsError, format_size, read_weights_file

    path = Path(ckpt_path).expanduser()
    try:
        weights = read_weights_file(path, mmap=mmap)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{key}={path} does not exist; {fix}") from err
    except UnreadableWeightsError as err:
        raise ValueError(f"{key}={path} ({format_size(err.size)}) cannot be read: "
                         f"{err.reason}. Instead, {fix}.") from err
    problem = student_checkpoint_problem(weights, training)
    if problem:
        raise ValueError(f"{key}={path} ({format_size(weights.size)}) {problem}. Instead, {fix}.")
    return weights.obj


def load_student(ckpt_path: str | Path) -> TrainedStudent:
    """Rebuild a trained student from its checkpoint alone (no teacher, no training config,
    no training module).

    Checkpoints of any version of src.train load: before the student's decoder was called so,
    its config keys were ``head``/``head_init``/``head_dilations`` and its weights ``head.*``.

    Returns:
        A ``TrainedStudent`` (eval mode): the ``SegStudent`` as ``.model``, its vocabulary, the
        input normalisation it was trained with, its teacher's spec and its run's
        ``test_resize``. ``StudentTestModule`` runs it in ``Trainer.test``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, truncated or unreadable, is not a MaskCLIP+ checkpoint,
            or its weights do not fit the student architecture it records.
    """
    from hydra.utils import instantiate

    checkpoint = read_student_checkpoint(ckpt_path)
    hparams = checkpoint.get("hyper_parameters", {})
    extra = checkpoint["maskclip_plus"]
    vocab = ClassVocabulary(tuple(extra["vocabulary"]["names"]),
                            tuple(tuple(q) for q in extra["vocabulary"]["queries"]), ckpt_path)
    background_index = hparams.get("background_index")
    if background_index not in (None, 0):
        raise ValueError(f"{ckpt_path}: background_index={background_index}; the background "
                         "class must be class 0 (as in VOC-21 / Context-60)")
    config = hparams["student_cfg"]
    state = rename_legacy_keys({k[len("student."):]: v for k, v in checkpoint["state_dict"].items()
                                if k.startswith("student.")})
    build = instantiate(canonical_student_config(config))
    student: SegStudent = build(class_embeddings=state["class_embeddings"],
                                background=background_index is not None)
    try:
        student.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{ckpt_path}: the saved weights do not fit the student architecture "
                         f"{config.get('backbone')} it records ({err})") from err
    return TrainedStudent(
        student, vocab, hparams.get("image_mean"), hparams.get("image_std"), config=config,
        # The teacher it was trained with (None for supervised runs): what new classes need.
        teacher_spec=extra.get("teacher"), templates=hparams.get("templates"),
        unseen=hparams.get("unseen"), test_resize=hparams.get("test_resize", "direct"),
        source=str(ckpt_path))


class StudentTestModule(StudentEvalSteps, L.LightningModule):
    """``Trainer.test`` of a ``TrainedStudent`` (src.eval ``ckpt_path=``): the same test steps,
    metric and per-class table as the training module's test after fit.

    Args:
        student: what ``load_student`` returned.
        unseen: unseen class indices for the seen/unseen/hIoU summary (default: the zero-shot
            split the student was trained with, if any).
        test_resize: how logits reach the ground truth's size (default: its run's).
    """

    def __init__(self, student: TrainedStudent, unseen: Sequence[int] | None = None,
                 test_resize: TestResize | None = None) -> None:
        super().__init__()
        test_resize = test_resize or student.test_resize
        if test_resize not in ("direct", "two_step"):
            raise ValueError(f"test_resize={test_resize!r}: choose direct or two_step")
        self.trained = student
        self.vocabulary = student.vocabulary
        self.test_resize = test_resize
        self.test_iou = SegmentationIoU(student.num_classes,
                                        unseen if unseen is not None else student.unseen)
        self.test_summary: dict[str, float] = {}
        self.test_per_class: dict[str, float] = {}

    @property
    def student(self) -> SegStudent:
        return self.trained.model
