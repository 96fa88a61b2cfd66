"""Frozen modules held by a trainable one: the teacher of both LitModules, MaskCLIP+'s snapshot.

One pattern, plain torch. The owner declares the attribute and assigns a ``FrozenModule``::

    class Owner(nn.Module):
        teacher = FrozenSlot()                     # reads give the held module itself

        def __init__(self, teacher):
            super().__init__()
            self.teacher = FrozenModule(teacher)   # or None

``FrozenModule`` is a registered child that holds its module *unregistered*. So, for the owner:

- ``parameters()``, ``named_buffers()`` and ``named_modules()`` never reach the held module's
  tensors: no optimizer built from them holds them, ``requires_grad_`` on the owner cannot
  unfreeze them, ``SyncBatchNorm.convert_sync_batchnorm`` leaves them alone. DDP (which
  Lightning's ``DDPStrategy`` wraps around the LightningModule itself) builds its gradient
  reducer from ``named_parameters()`` with ``requires_grad`` and broadcasts ``named_parameters()``
  and ``named_buffers()`` at start (and buffers every forward): it never sees the frozen tensors,
  so they are neither synchronised nor reported as unused (``find_unused_parameters`` stays off).
  The held module's parameters also get ``requires_grad=False``.
- ``.to(device)``, ``.to(torch.float64)``, ``.cuda()``, ``.half()``: ``nn.Module._apply`` recurses
  into the child, which applies the same conversion to the held module. Lightning's device
  placement (``strategy.model_to_device``: ``module.to(root_device)``) and its ``*-true``
  precision plugins (``module.to(dtype)``) therefore move it with the owner.
- ``.train()`` / ``.eval()``: the held module stays in eval mode (BN statistics frozen, no
  dropout) whatever mode the owner is put in; Lightning's save/restore of per-module modes
  around validation only touches the child's own flag.
- ``state_dict()``: nothing of the held module unless ``persistent=True`` (a self-training
  snapshot must be saved so that a resumed run labels with the same weights; a teacher is rebuilt
  from its spec instead). Loading ignores the keys of a non-persistent module, so a checkpoint
  that happens to hold them (written when the module was registered normally) still loads, and
  one without them loads strictly.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from torch import nn


class FrozenModule(nn.Module):
    """Holds ``module`` frozen for the module it is assigned to; see the module docstring.

    Args:
        module: the module to freeze (its parameters get ``requires_grad=False``; it is put in
            eval mode).
        persistent: save and load its weights with the owner's ``state_dict``, under the
            attribute's name (``snapshot.*``); by default they are left out.
    """

    def __init__(self, module: nn.Module, persistent: bool = False) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"FrozenModule holds an nn.Module, not a {type(module).__name__}")
        module.requires_grad_(False)
        module.eval()
        self.__dict__["module"] = module  # not registered: outside parameters() and DDP
        self.persistent = persistent

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def _apply(self, fn, recurse: bool = True):  # .to(), .cuda(), .double(), ...
        self.module._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> "FrozenModule":
        self.training = mode  # the owner's mode, as Lightning records it; the module stays eval
        self.module.eval()
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        if not self.persistent:
            return
        state = self.module.state_dict(keep_vars=keep_vars)
        destination.update((prefix + key, value) for key, value in state.items())
        metadata = getattr(destination, "_metadata", None)
        if metadata is not None:  # module versions, e.g. BatchNorm's, as a registered child has
            for key, value in getattr(state, "_metadata", {}).items():
                if key:
                    metadata[prefix + key] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        if not self.persistent:  # a frozen module's saved weights are not used: skip them
            return
        own = OrderedDict((key[len(prefix):], value) for key, value in state_dict.items()
                          if key.startswith(prefix))
        metadata = getattr(state_dict, "_metadata", None)
        if metadata is not None:
            own._metadata = OrderedDict((key[len(prefix):], value)  # type: ignore[attr-defined]
                                        for key, value in metadata.items()
                                        if key.startswith(prefix))
        try:
            result = self.module.load_state_dict(
                own, strict=False, assign=local_metadata.get("assign_to_params_buffers", False))
        except RuntimeError as err:  # shape mismatches: reported with the owner's other errors
            error_msgs.append(str(err))
            return
        if strict:
            missing_keys.extend(prefix + key for key in result.missing_keys)
            unexpected_keys.extend(prefix + key for key in result.unexpected_keys)

    def extra_repr(self) -> str:
        return (f"{type(self.module).__name__}, frozen"
                + (", persistent" if self.persistent else ", not saved"))


class FrozenSlot:
    """Class attribute for a frozen module: reads give the module the same-named
    ``FrozenModule`` child holds (None when unset).

    Assign ``FrozenModule(module)`` or None. A bare module assigned to it would be registered as
    an ordinary, trainable and saved child: reading the attribute then raises, naming the fix.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: nn.Module | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        holder = obj.__dict__.get("_modules", {}).get(self.name)
        if holder is None:
            return None
        if not isinstance(holder, FrozenModule):
            raise TypeError(f"{type(obj).__name__}.{self.name} holds a bare "
                            f"{type(holder).__name__}: assign FrozenModule(module) (or None) so "
                            "that it stays frozen and out of the optimizer")
        return holder.module

    def __set__(self, obj: nn.Module, value: Any) -> None:
        # nn.Module.__setattr__ stores module values in _modules itself; what reaches here is
        # anything else (None) or a direct object.__setattr__.
        if value is not None and not isinstance(value, nn.Module):
            raise TypeError(f"{type(obj).__name__}.{self.name}: assign FrozenModule(module) or "
                            f"None, not a {type(value).__name__}")
        if isinstance(value, nn.Module) and not isinstance(value, FrozenModule):
            value = FrozenModule(value)
        obj._modules[self.name] = value
