"""Per-task frames of the registered measures (analysis.measures). Inputs are already aligned
(see analysis.frames.align); numpy/torch arrays in, Polars frames out.

  pairwise_frame     experimental vs control, per layer, every selected pairwise measure, with
                     optional half-sample confidence intervals and a permutation null (with the
                     chance-calibrated score: analysis.frames.calibration)
  single_frame       every selected single measure of every model's layers
  cross_layer_frame  every experimental layer against every control layer (CKA-type measures)

Which measures run is data, a selection from the registry; this module never names one. Per
(model, layer) one View caches what the measures share (the Gram, cosines, neighbours, spectra), so
each GEMM is done once for every measure and pair, and the resamples index it instead of redoing it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from analysis.measures import Measure, Selection, View, list_measures, measure_info, resolve
from analysis.measures import standardize as standardize_features
from analysis.measures.arrays import ArrayLike, layers_and_rows

Pair = tuple[str, str]


def _check_models(reps: Mapping[str, ArrayLike], models: Sequence[str]) -> None:
    missing = [m for m in models if m not in reps]
    if missing:
        raise KeyError(f"models missing from reps: {missing} (have {sorted(reps)})")


def draw_indices(n: int, bootstrap: int, permutations: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Seeded resampling and permutation indices, the same for every layer, model and measure.

    Resampling is half-sampling: n//2 examples drawn WITHOUT replacement (the same draws for every
    layer and model, so per-layer intervals are comparable). Ordinary with-replacement bootstrap is
    wrong for similarity measures: a duplicated example is a perfectly matching pair in both
    representations and inflates them (debiased CKA 0.13 -> 0.27..0.50 on a test case; k-NN measures
    see a duplicate as a perfect shared neighbour). A half-sample estimate has about the variance of
    the full-sample one (finite-population correction (n-m)/(n-1) = 1/2 at m = n/2); the interval is
    its quantiles re-centred on the full-sample estimate (_interval), which also removes the
    small-sample bias of the half-sample estimate. Views index their per-example quantities (Grams,
    cosines, distances), so no GEMM is redone; centring, medians, neighbours, spectra and ranks are
    recomputed per draw, as for a fresh sample.
    Permutation: shuffle the control's rows against the experimental's. Every cached quantity of the
    control is permutation-equivariant, so the permuted view permutes them instead of recomputing.
    The two kinds draw from independent streams of `seed`, so the permutations depend on (n, P, seed)
    only: a frame with or without half-samples, and analysis.calibrate, see the same null.
    """
    boot_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    boot = [boot_rng.choice(n, size=n // 2, replace=False) for _ in range(bootstrap)]
    perms = [perm_rng.permutation(n) for _ in range(permutations)]
    return boot, perms


def evaluate_pairs(chosen: list[tuple[Measure, dict]], pairs: Sequence[Pair], left: Mapping[str, View],
              right: Mapping[str, View]) -> np.ndarray:
    """[measures, pairs] of measure(left[experimental], right[control])."""
    return np.array([[m.compute(left[e], right[c], **params) for e, c in pairs] for m, params in chosen],
                    dtype=np.float64).reshape(len(chosen), len(pairs))


def permutation_null(chosen: list[tuple[Measure, dict]], pairs: Sequence[Pair], views: Mapping[str, View],
                      perms: Sequence[np.ndarray]) -> np.ndarray:
    """[measures, pairs, P] of measure(experimental, control with its rows shuffled by each perm). The
    shuffled control is views[c].permute(perm): its Grams (and every other cached quantity) are the
    parent's, permuted (P K Pᵀ is an index, not a GEMM), so a permutation costs the measure's pairing
    step only; the experimental's view is shared as is."""
    controls = list(dict.fromkeys(c for _, c in pairs))
    null = np.full((len(chosen), len(pairs), len(perms)), np.nan)
    for r, perm in enumerate(perms):
        shuffled = {c: views[c].permute(perm) for c in controls}
        null[:, :, r] = evaluate_pairs(chosen, pairs, views, shuffled)
    return null


def _quiet_nan(fn, *args, **kwargs):
    """nan-aware reductions stay silent on all-nan slices (an undefined value stays nan)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _interval(values: np.ndarray, boot: np.ndarray, ci: float) -> dict[str, np.ndarray]:
    lo, hi = _quiet_nan(np.nanquantile, boot, [(1 - ci) / 2, 1 - (1 - ci) / 2], axis=-1)
    shift = values - _quiet_nan(np.nanmedian, boot, axis=-1)  # re-centre the half-sample spread on the estimate
    return {"ci_low": lo + shift, "ci_high": hi + shift, "n_bootstrap": np.isfinite(boot).sum(axis=-1)}


def null_stats(values: np.ndarray, null: np.ndarray, higher: np.ndarray, perfect: np.ndarray) -> dict[str, np.ndarray]:
    """One-sided in the measure's direction: p_value = (1 + #{null at least as similar}) / (1 + P); null_q95
    is the 5%-level critical value (the 95th percentile when higher means more similar, else the 5th);
    calibrated = (value - null_mean) / (perfect - null_mean), see adjusted."""
    count = np.isfinite(null).sum(axis=-1)
    q95, q05 = _quiet_nan(np.nanquantile, null, [0.95, 0.05], axis=-1)
    obs = values[..., None]
    exceed = np.where(higher[..., None], null >= obs, null <= obs).sum(axis=-1)
    p = np.where(np.isfinite(values), (1 + exceed) / (1 + count), np.nan)
    mean = _quiet_nan(np.nanmean, null, axis=-1)
    return {"null_mean": mean, "null_q95": np.where(higher, q95, q05), "p_value": p, "n_permutations": count,
            "calibrated": adjusted(values, mean, perfect)}


def adjusted(values: np.ndarray, null_mean: np.ndarray, perfect: np.ndarray) -> np.ndarray:
    """The chance-adjusted score (s - E[s_null]) / (perfect - E[s_null]) (as the adjusted Rand index):
    0 on average for unrelated data, 1 for identical representations, negative below chance. `perfect`
    is the measure's value for identical inputs (Measure.perfect; 1 for the built-in similarities, so
    (s - m0) / (1 - m0)); the formula holds for either direction (a distance with perfect 0 gives
    1 - s / m0). nan where `perfect` is unknown (nan) or the null is already at or beyond it (no headroom)."""
    values, null_mean, perfect = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (values, null_mean, perfect)))
    headroom = perfect - null_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (values - null_mean) / headroom
    # A null at the perfect value (or past it) leaves nothing to rescale: the score is undefined, not huge.
    ok = np.isfinite(out) & (np.abs(headroom) > 1e-12 * np.maximum(1.0, np.abs(perfect)))
    return np.where(ok, out, np.nan)


_INT_COLUMNS = {"layer", "control_layer", "n", "d", "n_bootstrap", "n_permutations"}


def _frame(columns: dict[str, object], length: int) -> pl.DataFrame:
    """Columns (scalars broadcast) to a frame with fixed dtypes; nan becomes null, which aggregates skip."""
    data, schema = {}, {}
    for name, col in columns.items():
        if np.isscalar(col) or col is None:
            col = [col] * length
        col = col.ravel().tolist() if isinstance(col, np.ndarray) else list(col)
        data[name] = col
        if name in _INT_COLUMNS:
            schema[name] = pl.Int64
        elif name == "standardized":
            schema[name] = pl.Boolean
        elif name in ("measure", "experimental", "control", "model", "task", "cluster"):
            schema[name] = pl.Utf8
        else:
            schema[name] = pl.Float64
    return pl.DataFrame(data, schema=schema).with_columns(pl.selectors.float().fill_nan(None))


def pairwise_frame(
    task: str,
    cluster: str,
    reps: Mapping[str, ArrayLike],
    pairs: Sequence[Pair],
    measures: Selection,
    *,
    bootstrap: int = 0,
    permutations: int = 0,
    seed: int = 0,
    ci: float = 0.95,
    standardize: bool = False,
) -> pl.DataFrame:
    """One row per (measure, pair, layer) of measure(experimental, control) for one task.

    reps: model -> aligned array [L, n, d_model] (layer 0 = embeddings; numpy or torch, CPU or CUDA).
    pairs: [(experimental, control), ...]. measures: pairwise names or (name, params) pairs.
    standardize: z-score every feature of each matrix first (massive dimensions cannot dominate).
    Columns: measure, experimental, control, task, cluster, layer, value (null where undefined), n,
    standardized; with bootstrap > 0: ci_low, ci_high (level `ci`, from seeded half-samples without
    replacement re-centred on value: see draw_indices for why not the plain bootstrap), n_bootstrap (draws
    with a defined value); with permutations > 0, the permutation null of every selected measure and
    pair (the control's rows shuffled; Grams permuted, not recomputed): null_mean, null_q95, p_value
    (one-sided, (1 + #{null >= value}) / (1 + P)), n_permutations and calibrated, the chance-adjusted
    score (value - null_mean) / (perfect - null_mean) (null where the measure declares no `perfect`
    value; see adjusted). analysis.calibrate gives the same numbers for one pair of matrices.
    """
    chosen = resolve(measures, "pairwise")
    pairs = [(str(e), str(c)) for e, c in pairs]
    if not pairs:
        raise ValueError("no (experimental, control) pairs given")
    models = list(dict.fromkeys(m for pair in pairs for m in pair))
    _check_models(reps, models)
    n_layers, n = layers_and_rows({m: reps[m] for m in models})
    boot_idx, perm_idx = draw_indices(n, bootstrap, permutations, seed)

    shape = (len(chosen), len(pairs), n_layers)
    values = np.full(shape, np.nan)
    boot = np.full((*shape, bootstrap), np.nan)
    null = np.full((*shape, permutations), np.nan)
    for layer in range(n_layers):
        views = {m: View(standardize_features(reps[m][layer]) if standardize else reps[m][layer]) for m in models}
        values[:, :, layer] = evaluate_pairs(chosen, pairs, views, views)
        for b, idx in enumerate(boot_idx):
            half = {m: v.subset(idx) for m, v in views.items()}
            boot[:, :, layer, b] = evaluate_pairs(chosen, pairs, half, half)
        if perm_idx:
            null[:, :, layer] = permutation_null(chosen, pairs, views, perm_idx)

    which_measure, which_pair, which_layer = (a.ravel() for a in np.indices(shape))
    columns: dict[str, object] = {
        "measure": [chosen[i][0].name for i in which_measure],
        "experimental": [pairs[p][0] for p in which_pair],
        "control": [pairs[p][1] for p in which_pair],
        "task": task,
        "cluster": cluster,
        "layer": which_layer,
        "value": values,
        "n": n,
        "standardized": bool(standardize),
    }
    if bootstrap:
        columns |= _interval(values, boot, ci)
    if permutations:
        higher = np.array([m.higher_is_similar for m, _ in chosen], dtype=bool)[:, None, None]
        perfect = np.array([np.nan if m.perfect is None else m.perfect for m, _ in chosen])[:, None, None]
        columns |= null_stats(values, null, np.broadcast_to(higher, shape), np.broadcast_to(perfect, shape))
    return _frame(columns, values.size)


def single_frame(task: str, cluster: str, reps: Mapping[str, ArrayLike], measures: Selection) -> pl.DataFrame:
    """One row per (measure, model, layer) of every selected single measure.

    reps: model -> [L, n, d] (models need not share n or d). Columns: measure, model, task, cluster,
    layer, value (null where undefined), n, d.
    """
    chosen = resolve(measures, "single")
    rows: list[tuple[int, str, int, float, int, int]] = []
    for model, array in reps.items():
        if array.ndim != 3:
            raise ValueError(f"{model}: expected [L, n, d], got shape {tuple(array.shape)}")
        n_layers, n, d = (int(s) for s in array.shape)
        for layer in range(n_layers):
            view = View(array[layer])  # one cache per (model, layer), shared by the measures
            rows += [(i, model, layer, m.compute(view, **params), n, d) for i, (m, params) in enumerate(chosen)]
    rows.sort(key=lambda row: row[0])  # stable: measure-major, then model and layer as given
    which, model, layer, value, n, d = (list(c) for c in zip(*rows)) if rows else ([], [], [], [], [], [])
    columns = {"measure": [chosen[i][0].name for i in which], "model": model, "task": task, "cluster": cluster,
               "layer": layer, "value": value, "n": n, "d": d}
    return _frame(columns, len(rows))


class _StandardizedLayers:
    """[L, n, d] whose layers are z-scored when read: a float64 copy of every layer at once would
    double or quadruple the activations' memory (33 x 750 x 4096 float64 = 0.8 GB per model)."""

    def __init__(self, array: ArrayLike) -> None:
        self.array, self.shape, self.ndim = array, tuple(array.shape), array.ndim

    def __getitem__(self, layer: int) -> ArrayLike:
        return standardize_features(self.array[layer])


def cross_layer_frame(
    task: str,
    cluster: str,
    reps: Mapping[str, ArrayLike],
    pairs: Sequence[Pair],
    measures: Selection,
    *,
    standardize: bool = False,
) -> pl.DataFrame:
    """Every layer of each experimental against every layer of its control, long form.

    Only measures registered with a cross-layer form (the CKA-type ones: Lx + Ly Grams, then one GEMM
    of unit-norm vectorised Grams); others raise ValueError. Columns: measure, experimental, control,
    task, cluster, layer (experimental's), control_layer, value, n.
    """
    chosen = resolve(measures, "pairwise")
    unsupported = [m.name for m, _ in chosen if m.cross_layer is None]
    if unsupported:
        supported = [name for name in list_measures("pairwise") if measure_info(name).cross_layer is not None]
        raise ValueError(f"no cross-layer form for {unsupported}; cross_layer_frame supports {supported}")
    models = list(dict.fromkeys(m for pair in pairs for m in pair))
    _check_models(reps, models)
    _, n = layers_and_rows({m: reps[m] for m in models})
    prepared = {m: _StandardizedLayers(reps[m]) if standardize else reps[m] for m in models}
    frames = []
    for measure, params in chosen:
        for e, c in pairs:
            mat = measure.cross_layer(prepared[e], prepared[c], **params)
            lx, ly = mat.shape
            frames.append(_frame({
                "measure": measure.name, "experimental": e, "control": c, "task": task, "cluster": cluster,
                "layer": np.repeat(np.arange(lx), ly), "control_layer": np.tile(np.arange(ly), lx),
                "value": mat, "n": n,
            }, lx * ly))
    if not frames:
        return _frame({"measure": [], "experimental": [], "control": [], "task": [], "cluster": [], "layer": [],
                       "control_layer": [], "value": [], "n": []}, 0)
    return pl.concat(frames)
