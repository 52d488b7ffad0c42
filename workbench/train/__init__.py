"""Data-parallel training on the engine pool (``wb.train``).

Synchronous data-parallel SGD as in Horovod and the Cray PE ML Plugin: each rank
computes gradients on its shard of the global batch, :class:`DistributedOptimizer`
averages them bucket by bucket with the shared :func:`workbench.allreduce_async` (the
buckets live in symmetric memory and the gradients are views into them, so nothing is
packed), and every rank applies the same update, so weights stay bit-identical. Works with the
bundled numpy :class:`MLP` and, when installed, PyTorch modules and optimizers.

On every rank::

    model = wb.train.MLP([64, 128, 10], seed=0)
    history = wb.train.fit(model, X, y, epochs=20, batch_size=96, X_val=Xt, y_val=yt)
"""

from __future__ import annotations

from workbench.train._buckets import DEFAULT_BUCKET_BYTES, ENV_BUCKET, plan_buckets
from workbench.train._checkpoint import load_checkpoint, resume, save_checkpoint
from workbench.train._data import ShardSampler, shard
from workbench.train._fit import History, evaluate, fit
from workbench.train._mlp import MLP
from workbench.train._optimizer import SGD, DistributedOptimizer
from workbench.train._params import ParameterMismatchError, broadcast_parameters

__all__ = [
    "DEFAULT_BUCKET_BYTES",
    "ENV_BUCKET",
    "MLP",
    "SGD",
    "DistributedOptimizer",
    "History",
    "ParameterMismatchError",
    "ShardSampler",
    "broadcast_parameters",
    "evaluate",
    "fit",
    "load_checkpoint",
    "plan_buckets",
    "resume",
    "save_checkpoint",
    "shard",
]
