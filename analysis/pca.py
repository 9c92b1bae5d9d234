"""Variance analysis (paper §4.3, Figure 5): principal components needed for 99% of the variance.

The spectrum comes from the centred Gram (n <= d) or the covariance (n > d): both have the squared
singular values of the centred data as non-zero eigenvalues. With n examples the centred data has rank
at most min(n-1, d) — the cap is recorded in every row (rank_cap, at_cap) because with n = 750 and
d = 4096 a model needing "more dimensions" can never show more than n-1 of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from analysis.cka import ArrayLike, _centered_features, _numpy64, raw_gram


def variance_spectrum(x: ArrayLike) -> np.ndarray:
    """Eigenvalues of the centred data's scatter matrix, descending, float64, clipped at 0."""
    n, d = x.shape
    if n <= d:
        ev = np.linalg.eigvalsh(raw_gram(x, "linear"))  # Xc Xcᵀ (n x n)
    else:
        xc = _numpy64(_centered_features(x))
        ev = np.linalg.eigvalsh(xc.T @ xc)  # Xcᵀ Xc (d x d)
    return np.clip(ev[::-1], 0.0, None)


def n_components_for(spectrum: np.ndarray, threshold: float = 0.99) -> int:
    """Smallest k with sum(top k eigenvalues) >= threshold * total (0 for constant data)."""
    total = spectrum.sum()
    if total <= 0.0:
        return 0
    ratio = np.cumsum(spectrum) / total
    return int(min(np.searchsorted(ratio, threshold - 1e-12) + 1, len(spectrum)))


def pca_frame(
    task: str, cluster: str, reps: Mapping[str, ArrayLike], threshold: float = 0.99
) -> pl.DataFrame:
    """One row per (model, layer): model, task, cluster, layer, n_components, rank_cap, at_cap, n, d,
    threshold. reps: model -> [L, n, d]."""
    rows = []
    for model, array in reps.items():
        n_layers, n, d = array.shape
        cap = min(n - 1, d)
        for layer in range(n_layers):
            k = n_components_for(variance_spectrum(array[layer]), threshold)
            rows.append((model, layer, k, cap, k >= cap, n, d))
    frame = pl.DataFrame(
        rows, schema=["model", "layer", "n_components", "rank_cap", "at_cap", "n", "d"], orient="row"
    )
    return frame.with_columns(
        pl.lit(task).alias("task"), pl.lit(cluster).alias("cluster"), pl.lit(threshold).alias("threshold")
    ).select("model", "task", "cluster", "layer", "n_components", "rank_cap", "at_cap", "n", "d", "threshold")
