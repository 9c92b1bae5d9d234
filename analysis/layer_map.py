"""Automatic layer map: shared / transition / refinement layers from the CKA curves.

The paper (§4.2) reads three functional groups off Figure 2: in *shared* layers the multi-task model
is no closer to the single-task controls than the pre-trained model (or further away); in
*transition* layers its CKA to the controls rises steeply above the pre-trained model's; in
*refinement* layers the gap stays high and changes slowly. We make that reading mechanical:

  1. delta(l) = mean_t CKA(tuned, C_t)(l) - mean_t CKA(base, C_t)(l), over seen tasks (averaging
     over any seeds / sweep settings as well);
  2. fit delta with a continuous piecewise-linear function with two change points k1 < k2
     (segmented least squares, every pair of interior layers tried, the smallest SSE wins);
  3. layers <= k1 are shared, k1 < l <= k2 transition, l > k2 refinement.

No layer number is hard-coded. The frame records delta, both curves and the slope of each segment,
so a reader can see whether the middle segment really is the steep rise the labels claim.
"""

from __future__ import annotations

import numpy as np
import polars as pl

FUNCTIONS = ("shared", "transition", "refinement")


def _hinge_fit(x: np.ndarray, y: np.ndarray, k1: float, k2: float) -> tuple[float, np.ndarray]:
    """Least squares of y on [1, x, (x-k1)+, (x-k2)+]; returns (SSE, coefficients)."""
    basis = np.column_stack([np.ones_like(x), x, np.maximum(x - k1, 0.0), np.maximum(x - k2, 0.0)])
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    resid = y - basis @ coef
    return float(resid @ resid), coef


def segment_layers(layers: np.ndarray, delta: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Best two change points (k1, k2) of delta over layers and the three segment slopes."""
    x = np.asarray(layers, dtype=np.float64)
    y = np.asarray(delta, dtype=np.float64)
    if len(x) < 4:
        raise ValueError("the layer map needs at least 4 layers")
    best = None
    interior = x[1:-1]
    for i, k1 in enumerate(interior):
        for k2 in interior[i + 1 :]:
            sse, coef = _hinge_fit(x, y, k1, k2)
            if best is None or sse < best[0] - 1e-15:
                best = (sse, int(k1), int(k2), coef)
    _, k1, k2, coef = best
    slopes = np.array([coef[1], coef[1] + coef[2], coef[1] + coef[2] + coef[3]])
    return k1, k2, slopes


def layer_map_frame(cka: pl.DataFrame, base: str = "pretrained", tuned: str = "multitask") -> pl.DataFrame:
    """Columns: layer, function, delta, base_cka, tuned_cka, segment_slope, k1, k2."""
    seen = cka.filter((pl.col("cluster") != "unseen") & pl.col("experimental").is_in([base, tuned]))
    curves = (
        seen.group_by("experimental", "layer")
        .agg(pl.col("cka").mean())
        .pivot(on="experimental", index="layer", values="cka")
        .sort("layer")
    )
    if base not in curves.columns or tuned not in curves.columns:
        raise ValueError(f"layer map needs CKA rows for experimentals {base!r} and {tuned!r}")
    curves = curves.drop_nulls()
    layers = curves["layer"].to_numpy()
    delta = (curves[tuned] - curves[base]).to_numpy()
    k1, k2, slopes = segment_layers(layers, delta)
    segment = np.where(layers <= k1, 0, np.where(layers <= k2, 1, 2))
    return pl.DataFrame(
        {
            "layer": layers.astype(np.int64),
            "function": [FUNCTIONS[s] for s in segment],
            "delta": delta,
            "base_cka": curves[base].to_numpy(),
            "tuned_cka": curves[tuned].to_numpy(),
            "segment_slope": slopes[segment],
            "k1": np.full(len(layers), k1, dtype=np.int64),
            "k2": np.full(len(layers), k2, dtype=np.int64),
        }
    )


def layer_ranges(layer_map: pl.DataFrame) -> list[tuple[str, int, int]]:
    """[(function, first layer, last layer)] for each contiguous run, in layer order."""
    out: list[tuple[str, int, int]] = []
    for layer, function in layer_map.sort("layer").select("layer", "function").iter_rows():
        if out and out[-1][0] == function and out[-1][2] == layer - 1:
            out[-1] = (function, out[-1][1], layer)
        else:
            out.append((function, layer, layer))
    return out
