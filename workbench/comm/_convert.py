"""Turn what a caller passed (numpy, torch, buffer protocol, ``__array__``, DLPack)
into flat contiguous numpy views without copying data, and results back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InvalidTypeError, InvalidValueError

__all__ = ["OPS", "SUPPORTED_DTYPES", "Item", "check_op", "finish", "is_torch", "prepare"]

OPS = ("sum", "mean", "max", "min")
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in ("float16", "float32", "float64", "int32", "int64"))
_F16 = np.dtype("float16")
_F32 = np.dtype("float32")
_SUPPORTED_NAMES = ", ".join(d.name for d in SUPPORTED_DTYPES)
_NAMES = {d.char: d.name for d in SUPPORTED_DTYPES}


@dataclass
class Item:
    """One tensor of a call.

    ``src`` is the flat contiguous input in the dtype the reduction runs in
    (float16 runs in float32), ``dst`` the flat contiguous array the result is written
    to (``None``: not allocated yet), ``final`` a float16 array the result is cast
    into at the end, ``keep`` the object returned when the caller supplied the output.
    """

    src: np.ndarray
    dst: np.ndarray | None
    shape: tuple[int, ...]
    dtype: np.dtype
    torch: bool
    final: np.ndarray | None = None
    keep: Any = None

    def describe(self) -> str:
        return f"{self.shape} {_NAMES[self.dtype.char]}"


def check_op(op: str) -> str:
    """``op`` normalised, or a ValueError naming the allowed ones."""
    if not isinstance(op, str) or op.lower() not in OPS:
        raise InvalidValueError(f"allreduce: unknown op {op!r}; allowed: {', '.join(OPS)}")
    return op.lower()


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (checked without importing torch)."""
    return type(x).__module__.split(".", 1)[0] == "torch" and hasattr(x, "numpy")


def as_numpy(x: Any, what: str = "input") -> tuple[np.ndarray, bool]:
    """A numpy view of ``x`` sharing its memory, and whether ``x`` is a torch tensor."""
    if isinstance(x, np.ndarray):
        return x, False
    if is_torch(x):
        if x.device.type != "cpu":
            raise InvalidTypeError(
                f"allreduce: {what} is a torch tensor on {x.device}; only CPU tensors are "
                "supported, move it with .cpu() first"
            )
        try:
            return x.detach().numpy(), True
        except (TypeError, RuntimeError) as exc:
            raise InvalidTypeError(
                f"allreduce: {what} torch tensor of dtype {x.dtype} cannot be viewed as numpy "
                f"({exc}); supported dtypes: {_SUPPORTED_NAMES}"
            ) from None
    try:
        if hasattr(x, "__dlpack__"):
            return np.from_dlpack(x), False
        return np.asarray(x), False
    except (TypeError, ValueError, BufferError) as exc:
        raise InvalidTypeError(
            f"allreduce: cannot read {what} of type {type(x).__name__} as an array ({exc}); "
            "pass a numpy array, a CPU torch tensor, or an object with the buffer protocol, "
            "__array__ or __dlpack__"
        ) from None


def _contiguous_target(arr: np.ndarray, what: str) -> np.ndarray:
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        problem = "is read-only" if not arr.flags.writeable else f"has strides {arr.strides}"
        raise InvalidTypeError(
            f"allreduce: cannot write the result into {what} of shape {arr.shape}: it {problem}. "
            "Pass a writable C-contiguous array (np.ascontiguousarray / tensor.contiguous()) "
            "or leave out=None to get a new array"
        )
    return arr.reshape(-1)


def prepare(x: Any, out: Any, op: str, what: str = "input") -> Item:
    """Validate one tensor and set up its flat views (no data copied for supported inputs)."""
    arr, torch = as_numpy(x, what)
    dtype = arr.dtype
    if dtype not in SUPPORTED_DTYPES:
        raise InvalidTypeError(
            f"allreduce: unsupported dtype {dtype} of {what} (shape {arr.shape}); supported: "
            f"{_SUPPORTED_NAMES}. Cast first, e.g. x.astype(np.float32)"
        )
    if op == "mean" and dtype.kind == "i":
        raise InvalidTypeError(
            f"allreduce: op='mean' of integer {what} ({dtype}) is not defined; use op='sum' "
            "and divide, or cast to a float dtype first"
        )
    shape = tuple(arr.shape)
    keep = None
    if out is x:
        dst = _contiguous_target(arr, what)
        keep = x
    elif out is not None:
        oarr, _ = as_numpy(out, "out")
        if oarr.shape != arr.shape or oarr.dtype != dtype:
            raise InvalidValueError(
                f"allreduce: out has shape {oarr.shape} {oarr.dtype} but {what} is "
                f"{arr.shape} {dtype}; they must match"
            )
        dst = _contiguous_target(oarr, "out")
        keep = out
    else:
        dst = None
    src = np.ascontiguousarray(arr).reshape(-1) if dst is None or out is not x else dst
    if dtype == _F16:  # reduce in float32 accumulators, round once at the end
        work = src.astype(_F32)
        return Item(work, work, shape, dtype, torch, final=dst, keep=keep)
    return Item(src, dst, shape, dtype, torch, keep=keep)


def finish(item: Item) -> Any:
    """The caller-facing result of a reduced item (numpy array or torch tensor)."""
    assert item.dst is not None
    if item.final is not None:
        np.copyto(item.final, item.dst, casting="unsafe")
    if item.keep is not None:
        return item.keep
    res = item.dst if item.dst.dtype == item.dtype else item.dst.astype(item.dtype)
    res = res.reshape(item.shape)
    if item.torch:
        import torch

        return torch.from_numpy(res)
    return res
