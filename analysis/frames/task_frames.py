"""One task's measured frames from its aligned activations: what the analyze stage computes per
task, without Ray, files or a config, so the runner and analysis.api share it (one code path, one
schema).

  split_selection  a measure selection -> (pairwise, single), the primary measure always pairwise
  task_pairs       which (experimental, control) pairs a task compares, given the models it has
  task_frames      similarity (+ layer_stats, cross_layer) for one task
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from analysis.frames.suite import cross_layer_frame, pairwise_frame, single_frame
from analysis.measures import Selection, measure_info
from analysis.measures.arrays import ArrayLike
from analysis.roles import CONTROL, CROSS_LAYER, EXPERIMENTALS, LAYER_STATS, SIMILARITY, is_reseeded

Spec = tuple[str, dict[str, Any]]


def split_selection(selection: Selection, primary: str,
                    primary_params: Mapping[str, Any] | None = None) -> tuple[list[Spec], list[Spec]]:
    """(pairwise, single) (name, params) specs of a selection; the primary measure is added first to the
    pairwise ones when the selection lacks it (cka, the floor and the findings are stated in it)."""
    pairwise: list[Spec] = []
    single: list[Spec] = []
    for entry in selection:
        name, params = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1] or {}))
        (pairwise if measure_info(name).kind == "pairwise" else single).append((name, dict(params)))
    if primary not in {name for name, _ in pairwise}:
        if measure_info(primary).kind != "pairwise":
            raise ValueError(f"primary measure {primary!r} is a single measure; it must be a pairwise one")
        pairwise.insert(0, (primary, dict(primary_params or {})))
    return pairwise, single


def task_pairs(models: Iterable[str], compared: tuple[str, ...] = EXPERIMENTALS) -> list[tuple[str, str]]:
    """Each experimental model (`compared`: pretrained, E, the published ones) against C_t; each twin
    against C_t (the floor) and each experimental model against each twin (how far the gap moves when
    the control is retrained)."""
    twins = sorted(m for m in models if is_reseeded(m))
    pairs = [(m, CONTROL) for m in compared] + [(twin, CONTROL) for twin in twins]
    pairs += [(m, twin) for twin in twins for m in compared]
    return pairs


def task_frames(task: str, cluster: str, aligned: Mapping[str, ArrayLike], pairwise: list[Spec], single: list[Spec],
                *, primary: str, compared: tuple[str, ...] = EXPERIMENTALS, pairs: list[tuple[str, str]] | None = None,
                n_dropped: int = 0, bootstrap: int = 0,
                permutations: int = 0, calibrate: int = 0, seed: int = 0, ci: float = 0.95, standardize: bool = False,
                cross_layer: bool = True) -> dict[str, pl.DataFrame]:
    """{similarity, layer_stats (with single measures), cross_layer (when asked and the primary has a
    cross-layer form)} for one task; aligned: model -> [L, n, d], rows the same examples in every model.
    compared: the experimental models (analysis.roles.experimentals); pairs: the pairwise frame's
    (experimental, control) pairs, default task_pairs(aligned, compared).
    bootstrap / permutations: half-sample intervals / permutation null of the primary measure against
    C_t only; calibrate > 0: that many permutations for EVERY measure and pair (null_mean, null_q95,
    p_value, n_permutations, calibrated on every row), superseding `permutations`."""
    primary_spec = [(name, params) for name, params in pairwise if name == primary]
    main_pairs = [(m, CONTROL) for m in compared]
    # One pass shares every (model, layer) Gram across all measures and pairs (and, calibrating, across
    # every permutation); the half-sample intervals, and without calibration the null, are computed only
    # where they are read: the primary measure against C_t.
    pairs = task_pairs(aligned, compared) if pairs is None else pairs
    sim = pairwise_frame(task, cluster, aligned, pairs, pairwise, permutations=calibrate, seed=seed, standardize=standardize)
    primary_null = 0 if calibrate else permutations
    if bootstrap or primary_null:
        resampled = pairwise_frame(task, cluster, aligned, main_pairs, primary_spec, bootstrap=bootstrap,
                                   permutations=primary_null, seed=seed, ci=ci, standardize=standardize)
        keys = ["measure", "experimental", "control", "layer"]
        extra = [c for c in resampled.columns if c not in sim.columns]  # intervals (+ the primary's null)
        sim = sim.join(resampled.select(keys + extra), on=keys, how="left", maintain_order="left")
    sims = [sim]
    if standardize:  # the report shows what standardising does to the primary measure
        sims.append(pairwise_frame(task, cluster, aligned, main_pairs, primary_spec, permutations=calibrate, seed=seed,
                                   standardize=False))
    frames = {SIMILARITY: pl.concat(sims, how="diagonal_relaxed").with_columns(pl.lit(n_dropped).alias("n_dropped"))}
    if single:
        frames[LAYER_STATS] = single_frame(task, cluster, aligned, single)
    if cross_layer and measure_info(primary).cross_layer is not None:
        frames[CROSS_LAYER] = cross_layer_frame(task, cluster, aligned, main_pairs, primary_spec,
                                                standardize=standardize)
    return frames
