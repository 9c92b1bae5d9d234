"""Per-task CKA frames: MOSSA's experimental-vs-control CKA per layer, with bootstrap CIs, a
permutation null and cross-layer matrices. Inputs are already aligned (see analysis.align).

Every row records its estimator (kernel, debiased, threshold), so frames from different settings
can be concatenated and never confused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from analysis.cka import (
    ArrayLike,
    Kernel,
    Precision,
    center_gram,
    cka_pairs,
    cross_layer_cka,
    kernel_from_raw,
    raw_gram,
    safe_ratio,
)


def _check_models(reps: Mapping[str, ArrayLike], control: str, experimentals: Sequence[str]) -> None:
    missing = [m for m in [control, *experimentals] if m not in reps]
    if missing:
        raise KeyError(f"models missing from reps: {missing} (have {sorted(reps)})")


def _resampled_stats(
    reps: Mapping[str, ArrayLike],
    control: str,
    experimentals: Sequence[str],
    kernel: Kernel,
    debiased: bool,
    threshold: float,
    precision: Precision,
    bootstrap: int,
    permutations: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Resampling and permutation draws, arrays [n_experimentals, L, draws].

    Resampling is half-sampling: n//2 examples drawn WITHOUT replacement (the same draws for every
    layer and model, so per-layer intervals are comparable). Ordinary with-replacement bootstrap is
    wrong for CKA: a duplicated example is a perfectly matching pair in both Grams and inflates CKA
    (debiased CKA 0.13 -> 0.27..0.50 on a test case). A half-sample estimate has about the variance of
    the full-sample one (finite-population correction (n-m)/(n-1) = 1/2 at m = n/2); the interval is
    its quantiles re-centred on the full-sample estimate (see task_cka_frame), which also removes the
    small-sample bias of the half-sample CKA. The raw Gram (linear: XcXcᵀ, RBF: D²) is indexed, so no
    GEMM is redone; the RBF median and the centring are recomputed per draw, as for a fresh sample.
    Permutation: shuffle the control's rows against the experimental's. Centring commutes with a
    permutation, so the centred control Gram is permuted in place of recomputing it.
    """
    n_layers, n = reps[control].shape[0], reps[control].shape[1]
    rng = np.random.default_rng(seed)
    boot_idx = np.stack([rng.choice(n, size=n // 2, replace=False) for _ in range(bootstrap)]) if bootstrap else []
    perm_idx = np.stack([rng.permutation(n) for _ in range(permutations)]) if permutations else None
    boot = np.empty((len(experimentals), n_layers, bootstrap))
    null = np.empty((len(experimentals), n_layers, permutations))
    for layer in range(n_layers):
        raws = {m: raw_gram(reps[m][layer], kernel, precision) for m in [control, *experimentals]}
        for b, idx in enumerate(boot_idx):
            sub = np.ix_(idx, idx)
            grams = {m: center_gram(kernel_from_raw(r[sub], kernel, threshold), debiased) for m, r in raws.items()}
            lc = grams[control]
            for e, m in enumerate(experimentals):
                boot[e, layer, b] = safe_ratio(np.vdot(grams[m], lc), np.linalg.norm(grams[m]) * np.linalg.norm(lc))
        if perm_idx is not None:
            lc = center_gram(kernel_from_raw(raws[control], kernel, threshold), debiased)
            lc_norm = np.linalg.norm(lc)
            for e, m in enumerate(experimentals):
                kc = center_gram(kernel_from_raw(raws[m], kernel, threshold), debiased)
                scale = np.linalg.norm(kc) * lc_norm
                for p, perm in enumerate(perm_idx):
                    null[e, layer, p] = safe_ratio(np.vdot(kc, lc[np.ix_(perm, perm)]), scale)
    return {"boot": boot, "null": null}


def task_cka_frame(
    task: str,
    cluster: str,
    reps: Mapping[str, ArrayLike],
    control: str,
    experimentals: Sequence[str],
    kernel: Kernel = "linear",
    debiased: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    *,
    threshold: float = 1.0,
    permutations: int = 0,
    ci: float = 0.95,
    precision: Precision = "auto",
) -> pl.DataFrame:
    """One row per (experimental, layer) of CKA(experimental, control) for one task.

    reps: model -> aligned array [L, n, d_model] (layer 0 = embeddings).
    Columns: experimental, control, task, cluster, layer, cka, n, kernel, debiased, threshold;
    with bootstrap > 0: ci_low, ci_high (level `ci`, from `bootstrap` seeded half-samples without
    replacement, re-centred on cka: see _resampled_stats for why not the plain bootstrap), n_bootstrap;
    with permutations > 0: null_mean, null_q95, p_perm (one-sided, (1 + #{null >= cka}) / (1 + P)),
    n_permutations.
    """
    _check_models(reps, control, experimentals)
    pairs = [(m, control) for m in experimentals]
    values = cka_pairs(reps, pairs, kernel, debiased, threshold, precision)
    n_layers, n = reps[control].shape[0], reps[control].shape[1]
    columns: dict[str, list] = {
        "experimental": [m for m in experimentals for _ in range(n_layers)],
        "layer": [layer for _ in experimentals for layer in range(n_layers)],
        "cka": [float(v) for m in experimentals for v in values[(m, control)]],
    }
    if bootstrap or permutations:
        draws = _resampled_stats(
            reps, control, experimentals, kernel, debiased, threshold, precision, bootstrap, permutations, seed
        )
        if bootstrap:
            boot = draws["boot"]
            observed = np.array(columns["cka"]).reshape(len(experimentals), n_layers)
            lo, hi = np.quantile(boot, [(1 - ci) / 2, 1 - (1 - ci) / 2], axis=2)
            shift = observed - np.median(boot, axis=2)  # re-centre the half-sample spread on the estimate
            columns["ci_low"] = (lo + shift).ravel().tolist()
            columns["ci_high"] = (hi + shift).ravel().tolist()
            columns["n_bootstrap"] = [bootstrap] * len(columns["cka"])
        if permutations:
            null = draws["null"]
            observed = np.array(columns["cka"]).reshape(len(experimentals), n_layers)
            columns["null_mean"] = null.mean(axis=2).ravel().tolist()
            columns["null_q95"] = np.quantile(null, 0.95, axis=2).ravel().tolist()
            exceed = (null >= observed[:, :, None]).sum(axis=2)
            columns["p_perm"] = ((1 + exceed) / (1 + permutations)).ravel().tolist()
            columns["n_permutations"] = [permutations] * len(columns["cka"])
    # Undefined values (a representation without variance) become nulls, which every aggregate skips.
    frame = pl.DataFrame(columns).with_columns(pl.selectors.float().fill_nan(None))
    return frame.with_columns(
        pl.lit(control).alias("control"),
        pl.lit(task).alias("task"),
        pl.lit(cluster).alias("cluster"),
        pl.lit(n, dtype=pl.Int64).alias("n"),
        pl.lit(kernel).alias("kernel"),
        pl.lit(debiased).alias("debiased"),
        pl.lit(threshold if kernel == "rbf" else None, dtype=pl.Float64).alias("threshold"),
    ).select(
        "experimental", "control", "task", "cluster", "layer", "cka", "n", "kernel", "debiased", "threshold",
        *[c for c in columns if c not in ("experimental", "layer", "cka")],
    )


def cross_layer_frame(
    task: str,
    cluster: str,
    reps: Mapping[str, ArrayLike],
    control: str,
    experimentals: Sequence[str],
    kernel: Kernel = "linear",
    debiased: bool = False,
    *,
    threshold: float = 1.0,
    precision: Precision = "auto",
) -> pl.DataFrame:
    """Every layer of each experimental against every layer of the control, long form.

    Columns: experimental, control, task, cluster, layer (experimental's), control_layer, cka, n,
    kernel, debiased, threshold.
    """
    _check_models(reps, control, experimentals)
    frames = []
    for m in experimentals:
        mat = cross_layer_cka(reps[m], reps[control], kernel, debiased, threshold, precision)
        lx, ly = mat.shape
        frames.append(
            pl.DataFrame(
                {
                    "experimental": [m] * (lx * ly),
                    "layer": np.repeat(np.arange(lx), ly),
                    "control_layer": np.tile(np.arange(ly), lx),
                    "cka": mat.ravel(),
                }
            )
        )
    n = reps[control].shape[1]
    return pl.concat(frames).with_columns(pl.col("cka").fill_nan(None)).with_columns(
        pl.lit(control).alias("control"),
        pl.lit(task).alias("task"),
        pl.lit(cluster).alias("cluster"),
        pl.col("layer").cast(pl.Int64),
        pl.col("control_layer").cast(pl.Int64),
        pl.lit(n, dtype=pl.Int64).alias("n"),
        pl.lit(kernel).alias("kernel"),
        pl.lit(debiased).alias("debiased"),
        pl.lit(threshold if kernel == "rbf" else None, dtype=pl.Float64).alias("threshold"),
    ).select(
        "experimental", "control", "task", "cluster", "layer", "control_layer", "cka", "n", "kernel",
        "debiased", "threshold",
    )
