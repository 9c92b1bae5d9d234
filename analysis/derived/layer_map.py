"""Layer map: shared / transition / refinement layers from the gap curve, only above the noise floor.

The paper (§4.2) reads three functional groups off Figure 2: in *shared* layers the multi-task model
is no closer to the single-task controls than the pre-trained model (or further away); in
*transition* layers its similarity to the controls rises steeply above the pre-trained model's; in
*refinement* layers the gap stays high and changes slowly. We make that reading mechanical and
say how sure it is:

  1. delta(l) = mean over seen tasks of s(E, C_t)(l) - s(pretrained, C_t)(l) (analysis.derived.gaps, with
     its task-bootstrap CI and the seed-to-seed noise floor);
  2. if no layer's gap is distinguishable from the floor (CI excluding zero and |delta| above the
     floor), there is no layer structure above noise: no map is drawn, and the frame says so;
  3. otherwise delta is fitted with a continuous piecewise-linear function with two change points
     k1 < k2 (segmented least squares over every pair of interior layers); layers <= k1 are shared,
     k1 < l <= k2 transition, l > k2 refinement. The same fit on every task-bootstrap draw gives
     the change points' confidence intervals.

No layer number is hard-coded.
"""

from __future__ import annotations

import numpy as np
import polars as pl

FUNCTIONS = ("shared", "transition", "refinement")
# The paper's boundaries on Llama-2-7B (32 blocks): shared 1-9, transition 10-15, refinement 16-32.
PAPER_FRACTIONS = (9 / 32, 15 / 32)


def _knot_pairs(x: np.ndarray) -> list[tuple[float, float]]:
    interior = x[1:-1]
    return [(k1, k2) for i, k1 in enumerate(interior) for k2 in interior[i + 1:]]


def _projectors(x: np.ndarray, pairs: list[tuple[float, float]]) -> np.ndarray:
    """[pairs, L, 4]: an orthonormal basis of span{1, x, (x-k1)+, (x-k2)+} for each knot pair."""
    bases = np.stack([np.column_stack([np.ones_like(x), x, np.maximum(x - k1, 0.0), np.maximum(x - k2, 0.0)])
                      for k1, k2 in pairs])
    q, _ = np.linalg.qr(bases)
    return q


def fit_change_points(layers: np.ndarray, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best (k1, k2) for each curve in `curves` [draws, L] (or one curve [L]): the knot pair with the
    smallest residual sum of squares, SSE = |y|^2 - |Q^T y|^2, all pairs and draws at once."""
    x = np.asarray(layers, dtype=np.float64)
    y = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    if len(x) < 4:
        raise ValueError("the layer map needs at least 4 layers")
    pairs = _knot_pairs(x)
    q = _projectors(x, pairs)
    explained = (np.einsum("plk,dl->pdk", q, y) ** 2).sum(axis=2)  # [pairs, draws]
    best = explained.argmax(axis=0)  # max explained = min SSE; ties go to the earliest pair
    knots = np.array(pairs)[best]
    return knots[:, 0].astype(np.int64), knots[:, 1].astype(np.int64)


def segment_slopes(layers: np.ndarray, delta: np.ndarray, k1: int, k2: int) -> np.ndarray:
    x = np.asarray(layers, dtype=np.float64)
    basis = np.column_stack([np.ones_like(x), x, np.maximum(x - k1, 0.0), np.maximum(x - k2, 0.0)])
    coef, *_ = np.linalg.lstsq(basis, np.asarray(delta, dtype=np.float64), rcond=None)
    return np.array([coef[1], coef[1] + coef[2], coef[1] + coef[2] + coef[3]])


def paper_boundaries(n_blocks: int) -> tuple[int, int]:
    """The paper's shared/transition/refinement boundaries scaled to a model with `n_blocks` blocks:
    shared = layers 0..k1, transition k1+1..k2, refinement the rest (layer 0 = embeddings)."""
    return round(PAPER_FRACTIONS[0] * n_blocks), round(PAPER_FRACTIONS[1] * n_blocks)


def layer_map_frame(gaps: pl.DataFrame, task_deltas: np.ndarray | None = None, *, draws: int = 2000,
                    level: float = 0.95, seed: int = 0) -> pl.DataFrame:
    """One row per layer of one measure's gap curve (analysis.derived.gaps.gap_frame, group "seen").

    task_deltas: [tasks, layers] per-task gaps in the same layer order, for the change points' CIs.
    Columns: measure, layer, function (null when there is no structure above noise), delta, ci_low,
    ci_high, floor, distinguishable, segment_slope, k1, k2, k1_ci_low, k1_ci_high, k2_ci_low,
    k2_ci_high, structure ("above noise" | "none above noise")."""
    gaps = gaps.sort("layer")
    measure = gaps["measure"][0] if "measure" in gaps.columns and gaps.height else None
    usable = gaps.filter(pl.col("delta").is_not_null())
    base = gaps.select("layer", "delta", "ci_low", "ci_high", "floor", "distinguishable").with_columns(
        pl.lit(measure, pl.String).alias("measure"))
    empty = {name: pl.lit(None, dtype) for name, dtype in (
        ("function", pl.String), ("segment_slope", pl.Float64), ("k1", pl.Int64), ("k2", pl.Int64),
        ("k1_ci_low", pl.Int64), ("k1_ci_high", pl.Int64), ("k2_ci_low", pl.Int64), ("k2_ci_high", pl.Int64))}
    if not usable["distinguishable"].any() or usable.height < 4:
        return _columns(base.with_columns(**empty, structure=pl.lit("none above noise")))
    layers, delta = usable["layer"].to_numpy(), usable["delta"].to_numpy()
    k1, k2 = (int(v[0]) for v in fit_change_points(layers, delta))
    slopes = segment_slopes(layers, delta, k1, k2)
    cis = {"k1_ci_low": None, "k1_ci_high": None, "k2_ci_low": None, "k2_ci_high": None}
    if task_deltas is not None and task_deltas.shape[0] >= 2:
        from analysis.derived.gaps import bootstrap_task_means

        keep = np.isin(gaps["layer"].to_numpy(), layers)
        curves = bootstrap_task_means(task_deltas[:, keep], draws, seed)
        curves = curves[np.isfinite(curves).all(axis=1)]
        if len(curves):
            b1, b2 = fit_change_points(layers, curves)
            q = [(1 - level) / 2, (1 + level) / 2]
            (cis["k1_ci_low"], cis["k1_ci_high"]), (cis["k2_ci_low"], cis["k2_ci_high"]) = (
                np.quantile(b1, q, method="nearest").astype(int).tolist(),
                np.quantile(b2, q, method="nearest").astype(int).tolist())
    all_layers = gaps["layer"].to_numpy()
    segment = np.where(all_layers <= k1, 0, np.where(all_layers <= k2, 1, 2))
    frame = base.with_columns(
        pl.Series("function", [FUNCTIONS[s] for s in segment]),
        pl.Series("segment_slope", slopes[segment]),
        k1=pl.lit(k1, pl.Int64), k2=pl.lit(k2, pl.Int64),
        **{name: pl.lit(value, pl.Int64) for name, value in cis.items()},
        structure=pl.lit("above noise"))
    return _columns(frame)


def _columns(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("measure", "layer", "function", "delta", "ci_low", "ci_high", "floor", "distinguishable",
                        "segment_slope", "k1", "k2", "k1_ci_low", "k1_ci_high", "k2_ci_low", "k2_ci_high", "structure")


def has_structure(layer_map: pl.DataFrame | None) -> bool:
    return layer_map is not None and layer_map.height > 0 and layer_map["function"].is_not_null().any()


def layer_groups(layer_map: pl.DataFrame | None, layers: list[int]) -> tuple[dict[str, list[int]], str]:
    """(function -> layers, source): the run's map when it stands above noise, else the paper's
    boundaries scaled to this model's depth."""
    if has_structure(layer_map):
        groups = {f: layer_map.filter(pl.col("function") == f)["layer"].to_list() for f in FUNCTIONS}
        return groups, "this run's layer map"
    n_blocks = max(layers)
    k1, k2 = paper_boundaries(n_blocks)
    groups = {"shared": [la for la in layers if la <= k1], "transition": [la for la in layers if k1 < la <= k2],
              "refinement": [la for la in layers if la > k2]}
    return groups, (f"the paper's boundaries scaled to {n_blocks} blocks (shared 0-{k1}, transition {k1 + 1}-{k2}, "
                    f"refinement {k2 + 1}-{n_blocks}), since this run's map is not above noise")


def layer_ranges(layer_map: pl.DataFrame) -> list[tuple[str, int, int]]:
    """[(function, first layer, last layer)] for each contiguous run, in layer order."""
    out: list[tuple[str, int, int]] = []
    rows = layer_map.filter(pl.col("function").is_not_null()).sort("layer").select("layer", "function").iter_rows()
    for layer, function in rows:
        if out and out[-1][0] == function and out[-1][2] == layer - 1:
            out[-1] = (function, out[-1][1], layer)
        else:
            out.append((function, layer, layer))
    return out
