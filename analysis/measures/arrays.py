"""The arrays measures take (numpy or torch, CPU or CUDA; n x d, or [L, n, d] per model): checks,
float64 copies, and the column centring every Gram, distance and spectrum starts from."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def check_2d(x: ArrayLike) -> None:
    """Raise ValueError unless x is one n x d matrix."""
    if x.ndim != 2:
        raise ValueError(f"expected an n x d matrix, got shape {tuple(x.shape)}")


def is_cuda(x: ArrayLike) -> bool:
    """True for a torch tensor on an accelerator (its Grams are then formed there)."""
    return isinstance(x, torch.Tensor) and x.device.type != "cpu"


def as_numpy64(x: ArrayLike) -> np.ndarray:
    """Any CPU/GPU array -> float64 numpy (bf16 tensors go through torch's own cast)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def as_numpy_float(x: ArrayLike) -> np.ndarray:
    """CPU array as float32 (kept when already float32, no copy) or float64 numpy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.numpy() if x.dtype in (torch.float32, torch.float64) else x.to(torch.float64).numpy()
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def centered_features(x: ArrayLike) -> ArrayLike:
    """Column-centred float64 copy of x (torch on its device, else numpy).

    Centring the features first is exact algebra (H X Xᵀ H = (HX)(HX)ᵀ; distances are translation
    invariant; U-centring removes the additive terms a shift produces) and it keeps the Gram's
    entries small, which is what lets a float32 GEMM stay accurate.
    """
    check_2d(x)
    if is_cuda(x):
        x = x.detach().to(torch.float64)
        return x - x.mean(dim=0, keepdim=True)
    x = as_numpy64(x)
    return x - x.mean(axis=0, keepdims=True)


def layers_and_rows(reps: Mapping[str, ArrayLike]) -> tuple[int, int]:
    """(L, n) shared by every [L, n, d_model] stack in reps (d may differ); ValueError otherwise."""
    shapes = {name: tuple(a.shape) for name, a in reps.items()}
    for name, s in shapes.items():
        if len(s) != 3:
            raise ValueError(f"{name}: expected [L, n, d], got shape {s}")
    ls = {s[0] for s in shapes.values()}
    ns = {s[1] for s in shapes.values()}
    if len(ls) != 1 or len(ns) != 1:
        raise ValueError(f"all representations must share L and n: {shapes}")
    return ls.pop(), ns.pop()
