"""SGD for numpy models and the data-parallel wrapper around any optimizer.

:class:`DistributedOptimizer` is the Horovod/Cray-ML-Plugin pattern: gradients live in
buckets of symmetric memory (:mod:`workbench.train._buckets`), backward hooks hand each
finished bucket to the shared :func:`workbench.allreduce_async` (averaging in place),
``step()`` waits for the buckets and applies the wrapped optimizer's update, which is
then identical on every rank.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench import _spans
from workbench.errors import InvalidTypeError, InvalidValueError
from workbench.train._buckets import Reducer, bucket_bytes_setting
from workbench.train._params import as_arrays, check_same_layout, describe, resolve_comm
from workbench.train._torch import TorchGrads, is_torch_object, is_torch_optimizer, require_torch

__all__ = ["SGD", "DistributedOptimizer"]


def _check_rate(name: str, value: float, *, positive: bool = False) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        kind = "a positive" if positive else "a non-negative"
        raise InvalidValueError(f"{name} must be {kind} number, got {value!r}")
    return v


class SGD:
    """Stochastic gradient descent with momentum and weight decay for a numpy model.

    ``model`` has ``params`` and ``grads`` (lists of arrays of equal shapes), as
    :class:`~workbench.train.MLP`. The update follows ``torch.optim.SGD``:
    ``v = momentum * v + (g + weight_decay * p)``; ``p -= lr * v``.
    """

    def __init__(
        self, model: Any, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        if not (hasattr(model, "params") and hasattr(model, "grads")):
            raise InvalidTypeError(
                f"SGD needs a model with `params` and `grads` lists (e.g. wb.train.MLP), "
                f"got {type(model).__name__}"
            )
        shapes = [p.shape for p in model.params], [g.shape for g in model.grads]
        if shapes[0] != shapes[1]:
            raise InvalidValueError(
                f"model params {shapes[0]} and grads {shapes[1]} differ in shape"
            )
        self.model = model
        self.lr = _check_rate("lr", lr, positive=True)
        self.momentum = _check_rate("momentum", momentum)
        self.weight_decay = _check_rate("weight_decay", weight_decay)
        self.velocity = [np.zeros_like(p) for p in model.params]

    def step(self) -> None:
        """Apply one update from ``model.grads``."""
        for p, g, v in zip(self.model.params, self.model.grads, self.velocity, strict=True):
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                v *= self.momentum
                v += g
                g = v
            p -= self.lr * g

    def zero_grad(self) -> None:
        """Nothing to clear: backward overwrites the gradients (kept for torch symmetry)."""

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and a copy of the momentum buffers."""
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "velocity": [v.copy() for v in self.velocity],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state``, a :meth:`state_dict` output."""
        self.lr, self.momentum = state["lr"], state["momentum"]
        self.weight_decay = state["weight_decay"]
        for v, saved in zip(self.velocity, state["velocity"], strict=True):
            np.copyto(v, saved)


class _NumpyGrads:
    """Gradients of a numpy model (``params``, a ``grads`` list, ``register_grad_hook``) whose
    backward writes ``grads[i]`` in place, so bucket views put there receive it."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer, self.model = optimizer, optimizer.model
        if not hasattr(self.model, "register_grad_hook"):
            raise InvalidTypeError(
                f"{type(self.model).__name__} has no register_grad_hook(fn); "
                "DistributedOptimizer needs it to see gradients become ready"
            )
        if not isinstance(self.model.grads, list):
            raise InvalidTypeError(
                f"{type(self.model).__name__}.grads is a {type(self.model.grads).__name__}; "
                "DistributedOptimizer needs a list (it puts bucket views in it)"
            )
        self._handle: Any = None
        self._views: dict[int, np.ndarray] = {}

    def arrays(self) -> list[np.ndarray]:
        return self.model.params

    def layout(self) -> list[tuple[tuple[int, ...], Any, int]]:
        return [(p.shape, p.dtype, p.nbytes) for p in self.model.params]

    def grad(self, index: int) -> Any:
        return self.model.grads[index]

    def bind(self, index: int, view: np.ndarray) -> None:
        np.copyto(view, self.model.grads[index])
        self.model.grads[index] = self._views[index] = view

    def ensure(self, index: int) -> bool:
        view, g = self._views[index], self.model.grads[index]
        if g is view:
            return True
        if np.shape(g) != view.shape or getattr(g, "dtype", None) != view.dtype:
            return False
        np.copyto(view, g)
        self.model.grads[index] = view
        return True

    def describe(self) -> str:
        return describe([np.asarray(g) for g in self.model.grads])

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def release(self) -> None:
        """Private copies of the gradients in place of the bucket views."""
        for i, view in self._views.items():
            if self.model.grads[i] is view:
                self.model.grads[i] = view.copy()

    def attach(self, ready: Any) -> None:
        self._handle = self.model.register_grad_hook(ready)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def _wrap(optimizer_or_params: Any, lr: float | None, momentum: float, weight_decay: float) -> Any:
    """An optimizer from what the caller passed (an optimizer, a model or parameters)."""
    obj = optimizer_or_params
    if isinstance(obj, SGD) or is_torch_optimizer(obj):
        if lr is not None:
            raise InvalidValueError(
                "pass lr= only with a model or parameters, not with an optimizer"
            )
        return obj
    if lr is None:
        raise InvalidValueError(
            "lr= is required when DistributedOptimizer builds the optimizer from a model or "
            "parameters (or pass an optimizer: wb.train.SGD(model, lr=...) / torch.optim.SGD)"
        )
    if hasattr(obj, "params") and hasattr(obj, "grads"):
        return SGD(obj, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if is_torch_object(obj) or (isinstance(obj, (list, tuple)) and obj and is_torch_object(obj[0])):
        torch = require_torch()
        params = obj.parameters() if isinstance(obj, torch.nn.Module) else obj
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise InvalidTypeError(
        f"DistributedOptimizer takes a wb.train.SGD, a torch.optim.Optimizer, a numpy model "
        f"with params/grads, or torch parameters; got {type(obj).__name__}"
    )


class DistributedOptimizer:
    """Data-parallel wrapper: average gradients across ranks, then step.

    ``optimizer_or_params`` is a :class:`SGD` (numpy models), a ``torch.optim.Optimizer``
    (CPU), or a model / torch parameters together with ``lr=`` (an SGD is built, with
    ``momentum`` and ``weight_decay``).
    Gradients are grouped into buckets of ``bucket_bytes`` (default
    :data:`DEFAULT_BUCKET_BYTES` or ``WORKBENCH_BUCKET_BYTES``) held in symmetric memory
    (:func:`workbench.comm.empty`), and the model's gradients become views into them
    (``model.grads[i]``, or ``param.grad`` for torch), so averaging needs no copy; with
    ``overlap`` each bucket is reduced by :func:`workbench.allreduce_async` on team
    ``team`` as soon as backward finished it. Collective: build it on every rank of
    ``comm`` with the same model layout (ParameterMismatchError otherwise). Use:
    ``backward; opt.step()`` every step; ``close()`` when done.
    """

    def __init__(
        self,
        optimizer_or_params: Any,
        *,
        lr: float | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        bucket_bytes: int | str | None = None,
        overlap: bool = True,
        comm: Any = None,
        team: str = "workbench.train",
    ) -> None:
        self.optimizer = _wrap(optimizer_or_params, lr, momentum, weight_decay)
        self.comm = resolve_comm(comm)
        self.bucket_bytes = bucket_bytes_setting(bucket_bytes)
        self.overlap = bool(overlap)
        self._source = (
            TorchGrads(self.optimizer)
            if is_torch_optimizer(self.optimizer)
            else _NumpyGrads(self.optimizer)
        )
        check_same_layout(as_arrays(self._source.arrays()), self.comm, "DistributedOptimizer")
        self.reducer = Reducer(
            self._source,
            bucket_bytes=self.bucket_bytes,
            overlap=self.overlap,
            comm=self.comm,
            team=team,
        )
        self._source.attach(self.reducer.ready)
        self._averaged = False  # synchronize() ran and no gradient arrived since

    @property
    def buckets(self) -> list[list[int]]:
        """Parameter indices of each bucket, in launch order."""
        return [b.indices for b in self.reducer.buckets]

    def synchronize(self) -> None:
        """Wait until the gradients are averaged across ranks (``step`` calls it).

        Call it to read or clip the averaged gradients before ``step()``, which then
        does not reduce them a second time.
        """
        self._wait()
        self._averaged = True

    def step(self) -> None:
        """Average the gradients across ranks, then apply the wrapped optimizer's update."""
        if self.reducer.started or not self._averaged:
            self._wait()
        self._averaged = False
        with _spans.span("update", "train"):
            self.optimizer.step()

    def _wait(self) -> None:
        """Wait for the buckets' allreduces (a span on the timeline when recorded)."""
        with _spans.span("wait for gradients", "comm"):
            self.reducer.wait()

    def zero_grad(self) -> None:
        """Clear the gradients: zeroes the buckets in place for torch (so ``param.grad``
        stays a bucket view; ``torch.optim``'s own ``zero_grad`` would drop it and cost a
        copy at the next step); the wrapped optimizer's ``zero_grad`` for numpy models."""
        self._source.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the wrapped optimizer's state."""
        self.optimizer.load_state_dict(state)

    def close(self) -> None:
        """Remove the gradient hooks and give the model private gradients again (copies of
        the bucket views), so the wrapped optimizer stays usable alone."""
        self._source.detach()
        self._source.release()

    def __repr__(self) -> str:
        return (
            f"DistributedOptimizer({type(self.optimizer).__name__}, {len(self.buckets)} "
            f"bucket(s) of <= {self.bucket_bytes} B, overlap={self.overlap}, "
            f"ranks={self.comm.Get_size()})"
        )
