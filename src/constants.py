"""Label codes shared by the datasets, the metrics and MaskCLIP+ training."""

from __future__ import annotations

#: Void / ignored pixels in every mask (mmseg's ``ignore_index``, reduce_zero_label's target).
IGNORE_INDEX = 255

#: A training-target pixel whose class the labeller must supply (the official code's -1).
UNLABELED = -1
