"""MaskCLIP-Lightning: free dense labels from CLIP (MaskCLIP, MaskCLIP+, and later heads)."""

import os

# No network call unless the user asks for one: albumentations (>= 1.4) asks PyPI for a newer
# version at import time unless this is set.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
