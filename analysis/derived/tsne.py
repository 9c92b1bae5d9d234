"""Seeded t-SNE (van der Maaten & Hinton, 2008) for the paper's Figures 4, 11 and 12.

scikit-learn's implementation (Barnes-Hut), after a PCA to at most 50 dimensions as in the
paper's reference recipe; PCA initialisation and a fixed seed make every panel reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from analysis.measures.arrays import ArrayLike, as_numpy64


def tsne(
    x: ArrayLike, perplexity: float = 30.0, n_iter: int = 750, seed: int = 0, pca_dims: int = 50
) -> np.ndarray:
    """2-D embedding [N, 2] of x [N, d]."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = as_numpy64(x)
    n = x.shape[0]
    if n < 4:
        raise ValueError("t-SNE needs at least 4 points")
    if x.shape[1] > pca_dims and n > pca_dims:
        x = PCA(n_components=pca_dims, random_state=seed).fit_transform(x)
    # Perplexity must stay below the number of neighbours there are.
    model = TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3.0), max_iter=max(n_iter, 250),
                 init="pca", random_state=seed, n_jobs=1)
    return model.fit_transform(x)


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


def tsne_layers(layer_map: pl.DataFrame | None, n_layers: int, configured: Sequence[int] | None = None) -> list[int]:
    """The configured layers, else the first, last and middle of every layer-map segment (the
    thirds when the map does not stand above noise)."""
    from analysis.derived.layer_map import has_structure, layer_ranges

    if configured is not None:
        return [layer for layer in configured if layer < n_layers]
    picks = {0, n_layers - 1}
    if has_structure(layer_map):
        picks |= {(first + last) // 2 for _, first, last in layer_ranges(layer_map)}
    else:
        picks |= {n_layers // 3, 2 * n_layers // 3}
    return sorted(picks)
