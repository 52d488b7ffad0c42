"""A small multilayer perceptron in numpy: ReLU hidden layers, softmax cross-entropy.

Parameters and gradients are lists of C-contiguous arrays, ``[W1, b1, W2, b2, ...]``.
The backward pass writes each layer's gradients in place, last layer first, and calls
the registered gradient hooks as each one is final, so a
:class:`~workbench.train.DistributedOptimizer` can start reducing early buckets while
the earlier layers are still being differentiated (as PyTorch's autograd hooks allow).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from workbench import _spans
from workbench.errors import InvalidTypeError, InvalidValueError

__all__ = ["MLP", "HookHandle"]

GradHook = Callable[[int], None]


class HookHandle:
    """Returned by :meth:`MLP.register_grad_hook`; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list[GradHook], hook: GradHook) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        """Stop calling the hook (idempotent)."""
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class MLP:
    """``sizes=[n_in, h1, ..., n_classes]``: dense layers with ReLU in between.

    Weights use He initialisation from ``np.random.default_rng(seed)``, biases start
    at zero; every array has dtype ``dtype`` (float32 or float64).
    """

    def __init__(self, sizes: Sequence[int], *, seed: int = 0, dtype: Any = np.float32) -> None:
        sizes = list(sizes)
        if len(sizes) < 2 or any(
            not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1 for s in sizes
        ):
            raise InvalidValueError(
                f"MLP sizes must be at least two positive integers [inputs, ..., classes], "
                f"got {sizes!r}"
            )
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise InvalidTypeError(f"MLP dtype must be float32 or float64, not {self.dtype}")
        self.sizes = [int(s) for s in sizes]
        rng = np.random.default_rng(seed)
        self.params: list[np.ndarray] = []
        for n_in, n_out in itertools.pairwise(self.sizes):
            w = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
            self.params += [w.astype(self.dtype), np.zeros(n_out, dtype=self.dtype)]
        self.grads: list[np.ndarray] = [np.zeros_like(p) for p in self.params]
        self._hooks: list[GradHook] = []

    @property
    def n_layers(self) -> int:
        """Number of dense layers."""
        return len(self.sizes) - 1

    def register_grad_hook(self, hook: GradHook) -> HookHandle:
        """Call ``hook(i)`` during backward as soon as ``grads[i]`` is final."""
        self._hooks.append(hook)
        return HookHandle(self._hooks, hook)

    # -- computation ---------------------------------------------------------------------
    def _check_inputs(self, X: Any, y: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise InvalidValueError(
                f"MLP expects X of shape (n, {self.sizes[0]}), got {X.shape}; "
                "reshape the samples to rows of features"
            )
        if y is None:
            return X, None
        y = np.asarray(y)
        if y.shape != (X.shape[0],) or y.dtype.kind not in "iu":
            raise InvalidValueError(
                f"labels y must be integers of shape ({X.shape[0]},) matching X {X.shape}, "
                f"got {y.dtype} {y.shape}"
            )
        if y.size and (y.min() < 0 or y.max() >= self.sizes[-1]):
            raise InvalidValueError(
                f"labels must lie in 0..{self.sizes[-1] - 1} for {self.sizes[-1]} classes, "
                f"got {int(y.min())}..{int(y.max())}"
            )
        return X, y

    def _forward(self, X: np.ndarray) -> list[np.ndarray]:
        """Activations ``[X, a1, ..., logits]`` (the last one before softmax)."""
        acts = [X]
        for layer in range(self.n_layers):
            w, b = self.params[2 * layer], self.params[2 * layer + 1]
            z = acts[-1] @ w
            z += b
            if layer < self.n_layers - 1:
                np.maximum(z, 0, out=z)
            acts.append(z)
        return acts

    def forward(self, X: Any) -> np.ndarray:
        """Logits of ``X`` (shape ``(n, classes)``)."""
        X, _ = self._check_inputs(X)
        return self._forward(X)[-1]

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class of every row of ``X``."""
        return self.forward(X).argmax(axis=1)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)``."""
        X, y = self._check_inputs(X, y)
        return float((self._forward(X)[-1].argmax(axis=1) == y).mean()) if len(y) else 0.0

    def loss_and_grad(self, X: Any, y: Any) -> tuple[float, float]:
        """Mean cross-entropy on the batch ``(X, y)`` and its accuracy; writes ``self.grads``.

        Gradients are produced last layer first; each registered hook is called with
        the index of a gradient as soon as it is complete.
        """
        X, y = self._check_inputs(X, y)
        n = X.shape[0]
        if n == 0:
            raise InvalidValueError("loss_and_grad needs at least one sample, got an empty batch")
        t0 = _spans.now() if _spans.on else 0
        acts = self._forward(X)
        logits = acts[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.log(total[:, 0]).mean() - shifted[rows, y].mean())
        accuracy = float((logits.argmax(axis=1) == y).mean())
        delta = exp / total  # softmax; becomes d loss / d logits below
        delta[rows, y] -= 1
        delta /= n
        if t0:
            t1 = _spans.now()
            _spans.add("forward", "train", t0, t1)
        for layer in reversed(range(self.n_layers)):
            iw, ib = 2 * layer, 2 * layer + 1
            np.sum(delta, axis=0, out=self.grads[ib])
            self._ready(ib)
            np.matmul(acts[layer].T, delta, out=self.grads[iw])
            self._ready(iw)
            if layer:
                delta = delta @ self.params[iw].T
                delta *= acts[layer] > 0
        if t0:
            _spans.add("backward", "train", t1)
        return loss, accuracy

    def _ready(self, index: int) -> None:
        for hook in self._hooks:
            hook(index)

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Sizes and a copy of the parameters."""
        return {"sizes": list(self.sizes), "params": [p.copy() for p in self.params]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy parameters from ``state``, a :meth:`state_dict` output (in place; shapes must
        match)."""
        if list(state.get("sizes", [])) != self.sizes:
            raise InvalidValueError(
                f"checkpoint is for an MLP of sizes {state.get('sizes')}, this one has "
                f"{self.sizes}; build the model with the same sizes"
            )
        for p, q in zip(self.params, state["params"], strict=True):
            np.copyto(p, q)

    def __repr__(self) -> str:
        return f"MLP({self.sizes}, dtype={self.dtype.name})"
