"""Seeded exact t-SNE (van der Maaten & Hinton, 2008) for the paper's Figures 4, 11 and 12.

Exact O(N²) gradients in float64 numpy: fine for the few thousand probe points per layer we plot,
deterministic for a given seed, and no extra dependency. Steps, as in the paper's reference recipe:
  1. PCA to at most 50 dimensions;
  2. per-point Gaussian bandwidths by bisection so each row of P has the given perplexity;
     P = (P + Pᵀ) / 2N;
  3. gradient descent on KL(P || Q), Student-t Q, with early exaggeration (x12 for 250 iterations),
     momentum 0.5 then 0.8 and per-parameter gains; learning rate max(N / 12 / 4, 50).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from analysis.cka import ArrayLike, _centered_features, _numpy64


def _pca(x: np.ndarray, dims: int) -> np.ndarray:
    xc = _numpy64(_centered_features(x))
    if xc.shape[1] <= dims:
        return xc
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return u[:, :dims] * s[:dims]


def _joint_probabilities(x: np.ndarray, perplexity: float) -> np.ndarray:
    """Symmetric P with every conditional row at the target perplexity (vectorised bisection on beta)."""
    n = x.shape[0]
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    np.fill_diagonal(d2, np.inf)
    target = np.log(min(perplexity, (n - 1) / 3.0))  # entropy in nats
    shifted = d2 - d2.min(axis=1, keepdims=True)  # shift for a stable exp; cancels in the normalisation
    np.fill_diagonal(shifted, 0.0)
    lo, hi = np.zeros((n, 1)), np.full((n, 1), np.inf)
    beta = np.ones((n, 1)) / np.maximum(np.median(d2[np.isfinite(d2)]), 1e-12)
    for _ in range(64):
        p = np.exp(-shifted * beta)
        np.fill_diagonal(p, 0.0)  # a point is not its own neighbour
        sum_p = p.sum(axis=1, keepdims=True)
        entropy = np.log(sum_p) + beta * (shifted * p).sum(axis=1, keepdims=True) / sum_p
        too_flat = entropy > target  # entropy too high -> sharper kernel, larger beta
        lo = np.where(too_flat, beta, lo)
        hi = np.where(too_flat, hi, beta)
        beta = np.where(np.isinf(hi), beta * 2.0, (lo + hi) / 2.0)
    p = p / sum_p
    p = (p + p.T) / (2 * n)
    return np.maximum(p, 1e-12)


def tsne(
    x: ArrayLike, perplexity: float = 30.0, n_iter: int = 750, seed: int = 0, pca_dims: int = 50
) -> np.ndarray:
    """2-D embedding [N, 2] of x [N, d]."""
    x = _pca(_numpy64(x), pca_dims)
    n = x.shape[0]
    if n < 4:
        raise ValueError("t-SNE needs at least 4 points")
    p = _joint_probabilities(x, perplexity)
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 1e-4, size=(n, 2))
    update = np.zeros_like(y)
    gains = np.ones_like(y)
    lr = max(n / 12.0 / 4.0, 50.0)
    exaggeration_iters = min(250, n_iter // 3)
    for it in range(n_iter):
        exaggeration = 12.0 if it < exaggeration_iters else 1.0
        momentum = 0.5 if it < exaggeration_iters else 0.8
        sq = (y * y).sum(1)
        num = 1.0 / (1.0 + sq[:, None] + sq[None, :] - 2 * y @ y.T)  # Student-t kernel
        np.fill_diagonal(num, 0.0)
        q = np.maximum(num / num.sum(), 1e-12)
        w = (exaggeration * p - q) * num
        grad = 4.0 * (w.sum(1)[:, None] * y - w @ y)  # dKL/dy_i = 4 Σ_j (p_ij - q_ij) num_ij (y_i - y_j)
        same_sign = np.sign(grad) == np.sign(update)
        gains = np.clip(np.where(same_sign, gains * 0.8, gains + 0.2), 0.01, None)
        update = momentum * update - lr * gains * grad
        y = y + update
        y = y - y.mean(axis=0)
    return y


def tsne_frame(
    reps: Mapping[str, ArrayLike],
    tasks: Sequence[str],
    clusters: Sequence[str],
    layers: Sequence[int] | None = None,
    perplexity: float = 30.0,
    n_iter: int = 750,
    seed: int = 0,
    max_points: int | None = 2000,
) -> pl.DataFrame:
    """t-SNE per (model, layer) of the probe examples of all tasks stacked.

    reps: model -> [L, N, d] with row i labelled tasks[i], clusters[i] (the same rows for every model).
    The same seeded subsample (max_points) and the same initialisation are used for every model and
    layer, so panels differ only by the representations. Columns: model, layer, point, task, cluster, x, y,
    perplexity, seed.
    """
    n_layers, n = next(iter(reps.values())).shape[:2]
    if len(tasks) != n or len(clusters) != n:
        raise ValueError(f"need one task and cluster label per row ({n})")
    rows = np.arange(n)
    if max_points is not None and n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    frames = []
    for model, array in reps.items():
        for layer in (range(n_layers) if layers is None else layers):
            emb = tsne(array[layer][rows], perplexity, n_iter, seed)
            frames.append(pl.DataFrame({
                "model": model,
                "layer": layer,
                "point": rows,
                "task": [tasks[i] for i in rows],
                "cluster": [clusters[i] for i in rows],
                "x": emb[:, 0],
                "y": emb[:, 1],
            }))
    return pl.concat(frames).with_columns(
        pl.col("layer").cast(pl.Int64), pl.col("point").cast(pl.Int64),
        pl.lit(perplexity).alias("perplexity"), pl.lit(seed).alias("seed"),
    )
