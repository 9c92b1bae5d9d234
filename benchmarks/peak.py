"""The dense matmul rate a benchmark's FLOP rate is read against (extraction's flop-fraction, training's mfu)."""

from __future__ import annotations

import time

import torch


def sync(device: str) -> None:
    """Wait for the device's queued work, so a wall-clock time covers it."""
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_rate(dtype: torch.dtype, device: str, size: int = 2048, repeats: int = 10) -> float:
    """Dense GEMM FLOP/s of size x size matrices on this device and dtype (best of `repeats`)."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
