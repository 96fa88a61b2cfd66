"""Frozen modules (src.models.frozen): out of parameters, optimizer, DDP and (by default) the
state dict; moved and cast with their owner; always in eval mode. The MaskCLIP+ teacher and
self-training snapshot are covered in test_train.py; the evaluation module's teacher here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.models.frozen import FrozenModule, FrozenSlot


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5))


class Owner(nn.Module):
    teacher = FrozenSlot()
    snapshot = FrozenSlot()

    def __init__(self) -> None:
        super().__init__()
        self.net = _net()
        self.teacher = FrozenModule(_net())
        self.snapshot = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + self.teacher(x)


def test_frozen_module_is_out_of_parameters_optimizer_and_state_dict():
    owner = Owner()
    teacher = owner.teacher
    assert isinstance(teacher, nn.Sequential)  # reads give the module itself
    frozen = {id(p) for p in teacher.parameters()}
    assert frozen and not frozen & {id(p) for p in owner.parameters()}
    assert not any(p.requires_grad for p in teacher.parameters())
    optimizer = torch.optim.SGD(owner.parameters(), lr=0.1)
    assert not frozen & {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(k.startswith("net.") for k in owner.state_dict())
    assert not any(n.startswith("teacher.") for n, _ in owner.named_buffers())
    owner.requires_grad_(True)  # cannot unfreeze it through the owner
    assert not any(p.requires_grad for p in teacher.parameters())
    # a training step leaves it untouched (BN statistics included)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    owner.train()
    owner(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    assert all(p.grad is None for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_frozen_module_stays_in_eval_mode_and_follows_to():
    owner = Owner()
    owner.train()
    assert owner.training and owner.net.training and not owner.teacher.training
    assert not any(m.training for m in owner.teacher.modules())
    owner.eval().train()
    assert not owner.teacher.training
    owner.to(torch.float64)
    assert {p.dtype for p in owner.teacher.parameters()} == {torch.float64}
    assert owner.teacher[1].running_mean.dtype == torch.float64  # buffers too
    owner.float()
    assert {p.dtype for p in owner.teacher.parameters()} == {torch.float32}
    if torch.cuda.is_available():
        owner.to("cuda")
        assert {p.device.type for p in owner.teacher.parameters()} == {"cuda"}


def test_checkpoints_with_or_without_frozen_weights_load():
    owner = Owner()
    state = owner.state_dict()
    assert not owner.load_state_dict(state).missing_keys  # strict: none of the teacher's needed
    # an old checkpoint that held the teacher (a registered child then) still loads, strictly
    old = {**state, **{f"teacher.{k}": torch.zeros_like(v)
                       for k, v in owner.teacher.state_dict().items()}}
    before = {k: v.clone() for k, v in owner.teacher.state_dict().items()}
    result = owner.load_state_dict(old)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in owner.teacher.state_dict().items():  # its saved weights are not used
        assert torch.equal(value, before[key]), key


def test_persistent_frozen_module_is_saved_and_loaded():
    owner = Owner()
    owner.snapshot = FrozenModule(_net(), persistent=True)
    state = owner.state_dict()
    assert {k for k in state if k.startswith("snapshot.")} == {
        f"snapshot.{k}" for k in owner.snapshot.state_dict()}
    assert not any(n.startswith("snapshot.") for n, _ in owner.named_parameters())
    other = Owner()
    other.snapshot = FrozenModule(_net(), persistent=True)
    other.load_state_dict(state)
    for key, value in owner.snapshot.state_dict().items():
        assert torch.equal(other.snapshot.state_dict()[key], value), key
    assert not other.snapshot.training
    # strict loading still reports a snapshot's missing or surplus weights
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*snapshot\.0\.weight"):
        other.load_state_dict({k: v for k, v in state.items() if k != "snapshot.0.weight"})
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*snapshot\.9\.weight"):
        other.load_state_dict({**state, "snapshot.9.weight": torch.zeros(1)})


def test_a_bare_module_in_a_frozen_slot_is_refused():
    owner = Owner()
    owner.teacher = _net()  # nn.Module.__setattr__ registers it as an ordinary child
    with pytest.raises(TypeError, match=r"assign FrozenModule\(module\)"):
        owner.teacher  # noqa: B018
    owner.teacher = None
    assert owner.teacher is None


def test_ddp_does_not_see_a_frozen_module(tmp_path):
    """DDP (as Lightning's DDPStrategy wraps the LightningModule) builds its gradient reducer
    from named_parameters() with requires_grad and broadcasts named_parameters()/named_buffers():
    a frozen module is in none of them, and find_unused_parameters=False trains fine."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        owner = Owner()
        ddp = nn.parallel.DistributedDataParallel(owner, find_unused_parameters=False)
        frozen = {id(t) for t in [*owner.teacher.parameters(), *owner.teacher.buffers()]}
        assert not frozen & {id(p) for p in ddp.parameters()}
        assert not frozen & {id(b) for b in ddp.buffers()}
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
        for _ in range(2):  # a second step fails if the reducer waited for a missing gradient
            optimizer.zero_grad()
            ddp(torch.randn(2, 3, 8, 8)).sum().backward()
            optimizer.step()
        assert all(p.grad is None for p in owner.teacher.parameters())
    finally:
        dist.destroy_process_group()


def test_evaluation_module_teacher_is_frozen_and_not_saved():
    from src.models.maskclip_module import MaskCLIPLitModule
    from src.models.teacher import MaskCLIPTeacher

    teacher = MaskCLIPTeacher("tiny-vit", None, cache_dir=None)
    module = MaskCLIPLitModule(teacher, ["red", "green", "blue"], templates="single")
    assert module.teacher is teacher
    assert not {id(p) for p in teacher.parameters()} & {id(p) for p in module.parameters()}
    assert not any(k.startswith("teacher.") for k in module.state_dict())
    module.train()
    assert not teacher.training
    module.setup("test")  # the text classifier, as Lightning builds it before placing the module
    module.to(torch.float64)
    assert {p.dtype for p in teacher.parameters()} == {torch.float64}
    assert teacher.query_embeddings.dtype == torch.float64  # the classifier moves along
    module.float()
    assert module.load_state_dict(module.state_dict()) is not None
