"""LightningDataModule for the segmentation datasets of :mod:`src.data.datasets`.

Evaluation batches are *lists* (images differ in size and masks stay at original resolution);
training batches are stacked (fixed crop size). Normalisation is resolved lazily so that the entry
point can inject the CLIP model's own mean/std with :meth:`SegDataModule.set_normalization`.

An unreadable image or mask stops evaluation with the dataset's
:class:`~src.data.images.UnreadableImageError` (file, split list, fix): leaving a sample out would
change the score. Training stops too, unless ``skip_unreadable``; then the stream uses the next
readable sample and :attr:`SegDataModule.skipped_files` counts the files it left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from src.data.datasets import DATASETS, SegmentationDataset
from src.data.sampling import StepSampler, StepSeededDataset
from src.data.splits import ZERO_SHOT_UNSEEN
from src.data.transforms import (
    IGNORE_INDEX,
    NORMALIZATION,
    build_eval_transform,
    build_train_transform,
    check_augment_args,
)

__all__ = ["SegDataModule", "list_collate", "stack_collate"]

log = logging.getLogger(__name__)


def list_collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Collates samples of different sizes into lists.

    Args:
        batch: Samples as returned by :class:`~src.data.datasets.SegmentationDataset`.

    Returns:
        ``dict(image=list[3×h×w], mask=list[H×W], name=list[str], orig_size=list[(H, W)])``;
        ``mask`` only when every sample has one; ``skipped`` (list of unreadable file paths the
        batch's samples stand in for, see ``skip_unreadable``) only when there are any.

    Raises:
        ValueError: If some samples have masks and others do not.
    """
    out: dict[str, list[Any]] = {
        "image": [s["image"] for s in batch],
        "name": [s["name"] for s in batch],
        "orig_size": [tuple(s["orig_size"]) for s in batch],
    }
    with_mask = sum("mask" in s for s in batch)
    if with_mask == len(batch):
        out["mask"] = [s["mask"] for s in batch]
    elif with_mask:
        raise ValueError(f"Batch mixes samples with and without masks: {out['name']}.")
    skipped = [path for s in batch for path in s.get("skipped", ())]
    if skipped:
        out["skipped"] = skipped
    return out


def stack_collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collates fixed-size (cropped) samples into tensors.

    Returns:
        ``dict(image=N×3×h×w float, mask=N×h×w int64, name=list[str], orig_size=list[(H, W)])``;
        ``mask`` only when every sample has one.
    """
    out = list_collate(batch)
    result: dict[str, Any] = dict(out)
    result["image"] = torch.stack(out["image"])
    if "mask" in out:
        result["mask"] = torch.stack(out["mask"])
    return result


class SegDataModule(L.LightningDataModule):
    """Data for MaskCLIP evaluation / prediction (and MaskCLIP+ training).

    Args:
        dataset: Registry key of :data:`~src.data.datasets.DATASETS` ('voc', 'context',
            'cocostuff', 'folder').
        root: Dataset root (see each dataset's ``LAYOUT``).
        vocabulary: Vocabulary name (e.g. 'voc20') or path to a vocabulary file; stored only.
        num_classes: Expected number of classes C; checked against the dataset. None takes the
            dataset's (e.g. the line count of a folder dataset's ``classes.txt``).
        dataset_kwargs: Extra dataset arguments, e.g. ``with_background`` (VOC) or
            ``num_classes`` (Context).
        train_split: Training split (e.g. 'aug'); None uses the dataset's default.
        test_split: Split for validation, test and prediction (e.g. 'val'); None = default.
        test_scale: ``(long_max, short_max)`` of the evaluation keep-ratio rescale.
        train_scale: Base scale of the training rescale; None uses ``test_scale``.
        crop_size: Training crop ``(height, width)``; required for stage 'fit'.
        ratio_range: Random scale range of the training rescale.
        normalize: 'clip' (the model's mean/std injected by :meth:`set_normalization`, else
            OpenAI CLIP's), 'imagenet' (the official MaskCLIP code's), or None (explicit
            ``mean``/``std`` or an injected pair required).
        mean: Explicit per-channel mean in [0, 1] units; overrides ``normalize``.
        std: Explicit per-channel std in [0, 1] units; overrides ``normalize``.
        batch_size: Batch size of every dataloader (evaluation batches are lists).
        num_workers: Dataloader workers.
        zero_shot_split: Key of :data:`~src.data.splits.ZERO_SHOT_UNSEEN` or None; stored only.
        name: The benchmark's name (``voc21``, ``cityscapes``...), which protocol presets key
            their per-dataset settings on; stored only.
        seed: seeds the training stream (sample order and augmentation per step).
        cat_max_ratio: None (plain random crop) or mmseg's ``RandomCrop`` rule in (0, 1]
            (official MaskCLIP+: 0.75): the crop is redrawn up to 10 times while one category
            covers ``>= cat_max_ratio`` of it; classes given to :meth:`set_suppressed_classes`
            count as one category, as in the official pipeline.
        photometric: 'jitter' (ColorJitter approximation, padding with the mean colour in the
            crop step), 'mmseg' (the exact mmseg 0.20.2 ``PhotoMetricDistortion``, padding after
            normalisation) or 'none' (no colour change); see :func:`~src.data.transforms.build_train_transform`.
        skip_unreadable: training only: a sample whose image or mask cannot be decoded is
            replaced by the next readable one (deterministic, so resumed runs stay exact), each
            such file is logged once with a warning and counted in :attr:`skipped_files`.
            False (default): training stops with the error naming the file. Validation, test
            and prediction always stop: leaving a sample out would change the score.
        overfit_batches: None, or train on the first ``overfit_batches`` global batches of the
            stream over and over (``debug=overfit``: the loss must fall towards zero).
    """

    ignore_index: int = IGNORE_INDEX

    def __init__(
        self,
        dataset: str,
        root: str,
        vocabulary: str,
        num_classes: int | None = None,
        dataset_kwargs: Mapping[str, Any] | None = None,
        train_split: str | None = None,
        test_split: str | None = None,
        test_scale: Sequence[int] = (2048, 512),
        train_scale: Sequence[int] | None = None,
        crop_size: Sequence[int] | None = None,
        ratio_range: Sequence[float] = (0.5, 2.0),
        normalize: str | None = "clip",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        batch_size: int = 1,
        num_workers: int = 2,
        zero_shot_split: str | None = None,
        seed: int = 0,
        name: str | None = None,
        cat_max_ratio: float | None = None,
        photometric: str = "jitter",
        skip_unreadable: bool = False,
        overfit_batches: int | None = None,
    ) -> None:
        super().__init__()
        DATASETS.resolve(dataset)  # an unknown key raises a ValueError listing the known ones
        if normalize is not None and normalize not in NORMALIZATION:
            raise ValueError(
                f"Unknown normalize={normalize!r}; choose one of {sorted(NORMALIZATION)} or null "
                "with explicit data.mean/data.std."
            )
        if (mean is None) != (std is None):
            raise ValueError("Give both data.mean and data.std, or neither.")
        if zero_shot_split is not None and zero_shot_split not in ZERO_SHOT_UNSEEN:
            raise ValueError(
                f"Unknown zero_shot_split {zero_shot_split!r}; known: {sorted(ZERO_SHOT_UNSEEN)}."
            )
        photometric, cat_max_ratio = check_augment_args(photometric, cat_max_ratio, "data.")
        # Hydra hands over ListConfig/DictConfig; plain containers keep hparams and workers simple.
        dataset_kwargs = dict(dataset_kwargs or {})
        test_scale = _ints(test_scale)
        train_scale = None if train_scale is None else _ints(train_scale)
        crop_size = None if crop_size is None else _ints(crop_size)
        ratio_range = tuple(float(r) for r in ratio_range)
        mean = None if mean is None else tuple(float(m) for m in mean)
        std = None if std is None else tuple(float(s) for s in std)
        root = str(root)
        vocabulary = str(vocabulary)
        self.save_hyperparameters(logger=False)

        self.dataset_name = dataset
        self.name = name or dataset
        self.root = root
        self.seed = int(seed)
        self.overfit_batches = overfit_batches
        self._resume_step = 0
        self.vocabulary = vocabulary
        self.num_classes = num_classes
        self.dataset_kwargs = dataset_kwargs
        self.train_split = train_split
        self.corruption: tuple[str, int, int] | None = None  # see set_corruption
        self.test_split = test_split
        self.test_scale = test_scale
        self.train_scale = train_scale if train_scale is not None else test_scale
        self.crop_size = crop_size
        self.ratio_range = ratio_range
        self.normalize = normalize
        self.mean = mean
        self.std = std
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.zero_shot_split = zero_shot_split
        self.cat_max_ratio = cat_max_ratio
        self.photometric = photometric
        self.skip_unreadable = bool(skip_unreadable)
        #: Unreadable training files replaced so far in this process's stream (path → how
        #: often); filled by on_before_batch_transfer, so it covers every DataLoader worker.
        self.skipped_files: dict[str, int] = {}
        self.suppressed_classes: tuple[int, ...] | None = None  # see set_suppressed_classes

        self._injected: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        self._warned_clip_fallback = False
        self.train_set: SegmentationDataset | None = None
        self.val_set: SegmentationDataset | None = None
        self.test_set: SegmentationDataset | None = None
        self.predict_set: SegmentationDataset | None = None

    # ----------------------------------------------------------------------------------------
    # Normalisation

    def set_normalization(self, mean: Sequence[float], std: Sequence[float],
                          binding: bool = False) -> None:
        """Injects the model's own mean/std (in [0, 1] units), used when ``normalize='clip'``.

        Explicit ``mean``/``std`` arguments and ``normalize='imagenet'`` take precedence, unless
        ``binding``: a trained student must see the statistics it was trained with, whatever
        the evaluation config says. Datasets already set up get their transforms rebuilt.
        """
        pair = (tuple(float(m) for m in mean), tuple(float(s) for s in std))
        self._injected = pair
        if binding:
            self.mean, self.std = pair
        self._refresh_transforms()

    def set_suppressed_classes(self, classes: Sequence[int] | None) -> None:
        """Tells the training crop which classes the official pipeline suppresses.

        The official MaskCLIP+ ``LoadAnnotations(suppress_labels=...)`` turns these classes into
        -1 before ``RandomCrop``, so its ``cat_max_ratio`` rule counts them as one category. Here
        the suppression happens later (in the LightningModule); only the crop rule uses this
        list, the training masks keep their values. Annotation-free training passes every class
        index, zero-shot the unseen classes, None (or empty) suppresses nothing. Only matters when
        ``cat_max_ratio`` is set. A training set already set up gets its transform rebuilt.

        Raises:
            ValueError: If a class index is negative or the ignore index.
        """
        classes = None if classes is None else [int(c) for c in classes]
        if not classes:
            self.suppressed_classes = None
        else:
            unique = tuple(sorted(set(classes)))
            if unique[0] < 0 or self.ignore_index in unique:
                raise ValueError(
                    f"Suppressed classes must be class indices >= 0 other than "
                    f"{self.ignore_index}, got {classes!r}."
                )
            self.suppressed_classes = unique
        self._refresh_transforms()

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The resolved ``(mean, std)``.

        Raises:
            RuntimeError: If ``normalize`` is None and neither explicit nor injected values exist.
        """
        if self.mean is not None and self.std is not None:
            return self.mean, self.std
        if self.normalize == "imagenet":
            return NORMALIZATION["imagenet"]
        if self._injected is not None:
            return self._injected
        if self.normalize == "clip":
            if not self._warned_clip_fallback:
                self._warned_clip_fallback = True
                log.warning(
                    "data.normalize='clip' but no model mean/std was injected "
                    "(SegDataModule.set_normalization); using OpenAI CLIP's."
                )
            return NORMALIZATION["clip"]
        raise RuntimeError(
            "Image normalisation is unresolved: data.normalize is null and neither data.mean/"
            "data.std nor SegDataModule.set_normalization(mean, std) gave values. Set "
            f"data.normalize to one of {sorted(NORMALIZATION)} or give data.mean and data.std."
        )

    def _eval_transform(self):
        mean, std = self.normalization
        return build_eval_transform(self.test_scale, mean, std)

    def _train_transform(self):
        if self.crop_size is None:
            raise ValueError("Training needs data.crop_size (e.g. [512, 512]).")
        mean, std = self.normalization
        return build_train_transform(
            self.train_scale,
            self.crop_size,
            mean,
            std,
            ratio_range=self.ratio_range,
            cat_max_ratio=self.cat_max_ratio,
            photometric=self.photometric,
            suppressed_classes=self.suppressed_classes,
        )

    def _refresh_transforms(self) -> None:
        if self.train_set is not None:
            self.train_set.transform = self._train_transform()
        for ds in (self.val_set, self.test_set, self.predict_set):
            if ds is not None:
                ds.transform = self._eval_transform()

    # ----------------------------------------------------------------------------------------
    # Datasets

    def _build(self, split: str | None, transform) -> SegmentationDataset:
        kwargs = dict(self.dataset_kwargs)
        if split is not None:
            kwargs["split"] = split
        ds = DATASETS.resolve(self.dataset_name)(root=self.root, transform=transform, **kwargs)
        if self.num_classes is None:
            self.num_classes = ds.num_classes
        elif ds.num_classes != self.num_classes:
            raise ValueError(
                f"data.num_classes={self.num_classes} but the {self.dataset_name!r} dataset "
                f"with dataset_kwargs={self.dataset_kwargs} has {ds.num_classes} classes (VOC: "
                "with_background=true gives 21; Context: dataset_kwargs.num_classes=59/60)."
            )
        return ds

    def set_corruption(self, name: str | None, severity: int = 1, seed: int = 0) -> None:
        """Corrupt every evaluation image (val/test/predict), seeded per image; None: clean."""
        self.corruption = None if name is None else (name, int(severity), int(seed))
        for ds in (self.val_set, self.test_set, self.predict_set):
            if ds is not None:
                ds.corruption = self.corruption

    def build_dataset(self, split: str | None = None) -> SegmentationDataset:
        """The dataset of ``split`` (default: the test split) without transform: raw images."""
        return self._build(split if split is not None else self.test_split, None)

    def setup(self, stage: str | None = None) -> None:
        """Builds the datasets of a stage ('fit', 'validate', 'test', 'predict'; None = test)."""
        stage = stage or "test"
        if stage == "fit" and self.train_set is None:
            self.train_set = self._build(self.train_split, self._train_transform())
        if stage in ("fit", "validate") and self.val_set is None:
            self.val_set = self._build(self.test_split, self._eval_transform())
        if stage == "test" and self.test_set is None:
            self.test_set = self._build(self.test_split, self._eval_transform())
        if stage == "predict" and self.predict_set is None:
            self.predict_set = self._build(self.test_split, self._eval_transform())
        for ds in (self.val_set, self.test_set, self.predict_set):
            if ds is not None:
                ds.corruption = getattr(self, "corruption", None)

    def _loader(
        self, ds: SegmentationDataset | None, stage: str, train: bool = False
    ) -> DataLoader:
        if ds is None:
            raise RuntimeError(f"Call setup({stage!r}) before asking for its dataloader.")
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=self.num_workers,
            collate_fn=stack_collate if train else list_collate,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """An endless, step-seeded stream: samples and crops are a function of (seed, step).

        Resuming at optimizer step k restarts the stream at micro-step k × accumulation, so a
        resumed run sees what the uninterrupted run saw; each rank reads its own slice.
        """
        if self.train_set is None:
            raise RuntimeError("Call setup('fit') before asking for its dataloader.")
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        accumulate = trainer.accumulate_grad_batches if trainer is not None else 1
        sampler = StepSampler(self.batch_size, rank, world, self._resume_step * accumulate,
                              cycle=(None if self.overfit_batches is None
                                     else int(self.overfit_batches) * accumulate))
        return DataLoader(
            StepSeededDataset(self.train_set, self.seed, skip_unreadable=self.skip_unreadable),
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            collate_fn=stack_collate,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Main process, every batch: takes the ``skipped`` paths out and counts them.

        Each unreadable file is logged once (with its path) the first time a batch stands in
        for it; :attr:`skipped_files` then holds every such file and how many samples it cost.
        """
        if isinstance(batch, dict) and "skipped" in batch:
            for path in batch.pop("skipped"):
                if path not in self.skipped_files:
                    log.warning(
                        "skipping unreadable training file %s (data.skip_unreadable=true): the "
                        "next readable sample is used instead; re-download or convert the file, "
                        "or remove it from the split. %d file(s) skipped so far.",
                        path, len(self.skipped_files) + 1)
                self.skipped_files[path] = self.skipped_files.get(path, 0) + 1
        return batch

    @property
    def num_skipped_files(self) -> int:
        """How many distinct unreadable training files were skipped (for the LitModule to log)."""
        return len(self.skipped_files)

    def state_dict(self) -> dict[str, Any]:
        """Saved in Lightning checkpoints: the optimizer step the stream has reached."""
        return {"global_step": self.trainer.global_step if self.trainer is not None else 0}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_step = int(state_dict.get("global_step", 0))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "validate")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_set, "predict")


def _ints(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)
