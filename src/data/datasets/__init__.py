"""Semantic-segmentation datasets in the mmseg on-disk layouts, plus a generic folder layout.

Label convention: mask pixels are class indices ``0..C-1`` in the vocabulary's order and 255 means
ignore. Every sample is a dict ``image`` (float32 3×h×w), ``mask`` (int64 H×W at the original
resolution for evaluation, h×w for a training crop; absent without a mask), ``name`` and
``orig_size`` (H, W); see :mod:`src.data.datasets.base`.

Bad input fails loudly and names its file: an unreadable image or mask raises
:class:`UnreadableImageError` naming the file and the split list to remove it from; an empty split
raises :class:`EmptySplitError`; split lists and class files are decoded by
:func:`src.utils.io.read_text_lines` (UTF-8 / UTF-16 with BOM, else an error naming the line).

Modules:
    base:       :class:`SegmentationDataset` (label map, mask validation, transform), ``Sample``.
    errors:     :class:`EmptySplitError` and the layout error messages.
    files:      split lists, class files and folder listings.
    mmseg:      shared code of the mmseg layouts.
    voc, context, coco, cityscapes, ade20k, folder: one dataset family each.
    registry:   :data:`DATASETS`, every ``data.dataset`` key (the offline world included).
"""

from src.data.datasets.ade20k import ADE20KDataset
from src.data.datasets.base import Sample, SegmentationDataset, Transform, reduce_zero_label_map
from src.data.datasets.cityscapes import CityscapesDataset
from src.data.datasets.coco import COCOObjectDataset, COCOStuffDataset
from src.data.datasets.context import PascalContextDataset
from src.data.datasets.errors import EmptySplitError, UnreadableImageError
from src.data.datasets.files import read_class_lines
from src.data.datasets.folder import IMAGE_EXTENSIONS, FolderDataset
from src.data.datasets.registry import DATASETS, DatasetRegistry
from src.data.datasets.voc import VOCDataset

__all__ = [
    "ADE20KDataset",
    "COCOObjectDataset",
    "COCOStuffDataset",
    "CityscapesDataset",
    "DATASETS",
    "DatasetRegistry",
    "EmptySplitError",
    "FolderDataset",
    "IMAGE_EXTENSIONS",
    "PascalContextDataset",
    "Sample",
    "SegmentationDataset",
    "Transform",
    "UnreadableImageError",
    "VOCDataset",
    "read_class_lines",
    "reduce_zero_label_map",
]
