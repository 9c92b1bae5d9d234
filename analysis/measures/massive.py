"""Massive activations (Sun et al., 2024): how far the largest activation stands above a typical one.

    massive_ratio = max |x_ij| / median |x_ij|    over every entry of the layer's n x d matrix

LLM residual streams carry a few dimensions with values 100-1000x the rest; they dominate linear
CKA and the cosine, so this ratio says how much to trust a layer's linear-CKA value (Figure 2 vs
the same pairs with standardize=True).
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.measures.registry import register
from analysis.measures.view import View


def _max_and_median_abs(x) -> tuple[float, float]:
    if isinstance(x, torch.Tensor):  # on its device; median = mean of the two middle values
        a = x.detach().abs().flatten().to(torch.float64)
        m = a.numel()
        lo = a.kthvalue((m + 1) // 2).values
        hi = a.kthvalue(m // 2 + 1).values
        return float(a.max()), float((lo + hi) / 2)
    a = np.abs(np.asarray(x, dtype=np.float64))
    return float(a.max()), float(np.median(a))


@register(
    "massive_ratio", kind="single",
    description="max |activation| / median |activation| over the layer's matrix (massive activations)",
    meaning="a ratio >= 1: ~3-5 for Gaussian-like activations, 100s when a few massive dimensions dominate",
    conventions={"entries": "every entry of the n x d matrix, absolute values", "centring": "none"},
    reference="Sun et al. (2024)'s max / median magnitude ratio (its definition only)",
)
def massive_ratio(x: View) -> float:
    peak, typical = _max_and_median_abs(x.x)
    return peak / typical if typical > 0 else float("nan")
