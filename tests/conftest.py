"""Shared test set-up: offline, CPU, tiny random-init open_clip models."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub / wandb: a stray pretrained tag must fail at once
# instead of retrying for a minute, and no test may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_vit():
    from src.models.teacher import MaskCLIPTeacher

    return MaskCLIPTeacher("tiny-vit", None, cache_dir=None)


@pytest.fixture
def tiny_rn():
    from src.models.teacher import MaskCLIPTeacher

    return MaskCLIPTeacher("tiny-rn", None, cache_dir=None)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One data root holding every real layout (fixtures in the real formats) and a folder set."""
    from tests.fixtures import (
        write_ade20k_fixture,
        write_cityscapes_fixture,
        write_coco_object_fixture,
        write_cocostuff_fixture,
        write_context_fixture,
        write_folder_fixture,
        write_voc_fixture,
    )

    root = tmp_path_factory.mktemp("data")
    write_voc_fixture(root, n=4, size=(40, 56))
    write_context_fixture(root, n=4, size=(40, 56))
    write_cocostuff_fixture(root, n=2, size=(40, 56))
    write_coco_object_fixture(root, n=2, size=(40, 56))
    write_cityscapes_fixture(root, n=2, size=(32, 64))
    write_ade20k_fixture(root, n=2, size=(40, 56))
    write_folder_fixture(root / "custom", n=3, size=(48, 64))
    return root
