"""The PyTorch side of workbench.train, imported only when torch objects are passed.

torch is optional: nothing here imports it at module level, and :func:`require_torch`
names the package to install when it is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from workbench.errors import InvalidValueError, MissingDependencyError

__all__ = [
    "TorchGrads",
    "is_torch_object",
    "is_torch_optimizer",
    "numpy_dtype",
    "require_torch",
    "torch_params",
]


def require_torch() -> Any:
    """The ``torch`` module, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "this workbench.train feature needs PyTorch, which is not installed: "
            "`pip install torch` (the CPU wheel is enough), or `pip install workbench[torch]`"
        ) from None
    return torch


def is_torch_object(obj: Any) -> bool:
    """True when ``obj`` is a torch tensor, module or optimizer (without importing torch)."""
    return "torch" in sys.modules and type(obj).__module__.split(".", 1)[0] == "torch"


def is_torch_optimizer(obj: Any) -> bool:
    """True when ``obj`` is a ``torch.optim.Optimizer`` (without importing torch)."""
    if "torch" not in sys.modules:
        return False
    return isinstance(obj, sys.modules["torch"].optim.Optimizer)


def torch_params(obj: Any) -> list[Any]:
    """Tensors of ``obj``: a module (parameters and buffers, in ``state_dict`` order) or an
    iterable of tensors."""
    torch = require_torch()
    if isinstance(obj, torch.nn.Module):
        return list(obj.state_dict(keep_vars=True).values())
    return list(obj)


def numpy_dtype(dtype: Any) -> Any:
    """The numpy dtype of torch dtype ``dtype``, or None when numpy has none (bfloat16)."""
    import torch

    try:
        return torch.empty(0, dtype=dtype).numpy().dtype
    except (TypeError, RuntimeError):
        return None


class TorchGrads:
    """Gradients of a torch optimizer's parameters, and hooks that report them ready.

    Bound gradients are ``param.grad`` tensors over bucket memory: autograd accumulates
    into a defined ``.grad`` in place, so backward writes straight into the buckets.
    """

    def __init__(self, optimizer: Any) -> None:
        require_torch()
        self.optimizer = optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        if not self.params:
            raise InvalidValueError("the optimizer has no parameters that require gradients")
        self._handles: list[Any] = []
        self._views: dict[int, Any] = {}

    def arrays(self) -> list[Any]:
        """The parameters (their shapes and dtypes define the buckets)."""
        return self.params

    def layout(self) -> list[tuple[tuple[int, ...], Any, int]]:
        return [
            (tuple(p.shape), numpy_dtype(p.dtype), p.numel() * p.element_size())
            for p in self.params
        ]

    def grad(self, index: int) -> Any:
        """Gradient tensor ``index`` (zeros for a parameter that got none)."""
        import torch

        p = self.params[index]
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        return p.grad

    def bind(self, index: int, view: Any) -> None:
        import torch

        p, t = self.params[index], torch.from_numpy(view)
        if p.grad is None:
            t.zero_()
        else:
            t.copy_(p.grad)
        p.grad = self._views[index] = t

    def ensure(self, index: int) -> bool:
        import torch

        p, t = self.params[index], self._views[index]
        g = p.grad
        if g is t:
            return True
        if g is None:
            t.zero_()
        elif g.shape == t.shape and g.dtype == t.dtype and g.layout == torch.strided:
            t.copy_(g)
        else:
            return False
        p.grad = t
        return True

    def describe(self) -> str:
        return ", ".join(
            "no gradient"
            if p.grad is None
            else f"{tuple(p.grad.shape)} {str(p.grad.dtype).removeprefix('torch.')}"
            for p in self.params
        )

    def zero_grad(self) -> None:
        """Zero bound gradients in place; drop the others (``set_to_none``, as torch)."""
        for i, p in enumerate(self.params):
            t = self._views.get(i)
            if t is not None and p.grad is t:
                t.zero_()
            else:
                p.grad = None

    def release(self) -> None:
        """Private copies of the gradients in place of the bucket views."""
        for i, t in self._views.items():
            p = self.params[i]
            if p.grad is t:
                p.grad = t.clone()

    def attach(self, ready: Callable[[int], None]) -> None:
        """Call ``ready(i)`` when the gradient of parameter ``i`` has been accumulated."""
        for i, p in enumerate(self.params):
            self._handles.append(p.register_post_accumulate_grad_hook(lambda _p, i=i: ready(i)))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
