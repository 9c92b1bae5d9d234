"""The analysis alone: activations you already have in, the run's frames and verdicts out, with no
Ray, training or config. One entry point, `compare`; it runs the code the analyze stage runs
(analysis.frames.align, analysis.frames.task_frames, analysis.derive), so its frames have the run's schemas.

    reps[model][task] = array [layers, n, d]     (numpy or torch; or a list of per-layer [n, d])
                      = (example_ids, array)      rows matched across models by id instead of position

model: "pretrained" and "control" (C_t) for every task, and at least one tuned model: "multitask" (E)
and/or any other label (a published checkpoint, say), each compared with C_t and the pretrained model
like E, with its own gaps, layer map and findings (their `experimental` column); optionally reseeded
controls, analysis.roles.reseeded(seed) -> "control@<seed>", for the seed-to-seed noise floor (on
some tasks or all).
tasks: task -> cluster, or task -> {"cluster": ..., covariates}; cluster "unseen" (analysis.roles.UNSEEN)
marks a task held out of E's training; covariates (train_size, flesch_kincaid, coleman_liau) feed
the correlations and the data-size and readability claims.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from analysis.derive import derive_frames, options_for
from analysis.frames.align import align_and_mask, as_numpy
from analysis.frames.inputs import KINDS, UNKNOWN
from analysis.frames.task_frames import split_selection, task_frames
from analysis.measures import DEFAULT_MEASURES, PAPER_MEASURES, Selection, resolve
from analysis.roles import (
    CONTROL,
    CROSS_LAYER,
    LAYER_STATS,
    MULTITASK,
    PRETRAINED,
    SIMILARITY,
    TASK_STATS,
    experimentals,
    is_reseeded,
)

REQUIRED = (PRETRAINED, CONTROL)  # every task needs these two, and every tuned model


@dataclass(frozen=True)
class Comparison:
    """The frames of one comparison, each field named as the run's <out>/<field>.parquet (analysis.roles)
    and with its schema. None: not computed (no single measures, cross_layer off, too few tasks or
    covariates for correlations, no unseen task)."""

    similarity: pl.DataFrame          # (measure, experimental, control, task, layer): value, n, ...
    cka: pl.DataFrame                 # the primary measure of pretrained and E against C_t
    seed_baseline: pl.DataFrame       # the primary measure between C_t and each reseeded twin (empty: none)
    movement: pl.DataFrame
    gaps: pl.DataFrame                # (measure, group, layer): E - pretrained, CI, floor, distinguishable
    layer_map: pl.DataFrame
    findings: pl.DataFrame            # (measure, claim): value, CI, floor, verdict, reason
    layer_stats: pl.DataFrame | None = None
    cross_layer: pl.DataFrame | None = None
    correlations: pl.DataFrame | None = None
    unseen: pl.DataFrame | None = None
    task_stats: pl.DataFrame | None = None

    def frames(self) -> dict[str, pl.DataFrame]:
        """{frame stem: frame} of those computed, e.g. to write as a run's Parquet files or to pass
        to analysis.report.write_report."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


# --- input checks: each failure is one line saying what to fix ------------------------------------

def _is_ids(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and not np.issubdtype(value.dtype, np.floating)
    return isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, np.integer)) for v in value)


def _as_layers(value: Any, where: str) -> tuple[list[str] | None, np.ndarray]:
    """(example ids or None, [L, n, d]) from an array, a list of per-layer [n, d] or an (ids, either) pair."""
    ids = None
    if isinstance(value, tuple) and len(value) == 2 and _is_ids(value[0]):
        ids, value = [str(i) for i in value[0]], value[1]
    if isinstance(value, (list, tuple)):
        layers = [as_numpy(layer) for layer in value]
        shapes = {tuple(layer.shape) for layer in layers}
        if len(shapes) > 1 or any(layer.ndim != 2 for layer in layers):
            raise ValueError(f"{where}: per-layer arrays must all be [n, d] of one shape, got {sorted(shapes)}")
        value = np.stack(layers) if layers else np.empty((0, 0, 0))
    array = as_numpy(value)
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"{where}: expected an array [layers, n, d] (or a list of [n, d]), got shape {array.shape}")
    if ids is not None and len(ids) != array.shape[1]:
        raise ValueError(f"{where}: {len(ids)} example ids for {array.shape[1]} rows")
    return ids, array


def _clusters(tasks: Mapping[str, str | Mapping[str, Any]]) -> tuple[dict[str, str], pl.DataFrame | None]:
    """(task -> cluster, task_stats frame of the covariates or None when no task has any)."""
    if not tasks:
        raise ValueError("tasks is empty; pass task -> cluster for every task in reps")
    clusters, rows = {}, []
    for task, info in tasks.items():
        if isinstance(info, str):
            info = {"cluster": info}
        if not isinstance(info, Mapping) or not isinstance(info.get("cluster"), str):
            raise ValueError(f"tasks[{task!r}]: give a cluster name, or a mapping with a 'cluster' string")
        clusters[str(task)] = info["cluster"]
        rows.append({"task": str(task), **info})
    covariates = any(len(row) > 2 for row in rows)
    return clusters, pl.DataFrame(rows, infer_schema_length=None) if covariates else None


def _task_inputs(reps: Mapping[str, Mapping[str, Any]], clusters: Mapping[str, str]) -> dict[str, dict]:
    """task -> model -> (ids, [L, n, d]), checked: the three roles present, no stray task, one layer
    count everywhere, and rows that can be matched (same count, or example ids in every model)."""
    missing = [m for m in REQUIRED if m not in reps]
    if missing:
        raise ValueError(f"reps lacks {missing}; give reps[model][task] for each of {list(REQUIRED)}")
    needed = (*REQUIRED, *_tuned(reps))
    if len(needed) == len(REQUIRED):
        raise ValueError(f"reps has no tuned model to compare; add {MULTITASK!r} (E) or a published model's label")
    out: dict[str, dict] = {task: {} for task in clusters}
    for model, per_task in reps.items():
        if not isinstance(per_task, Mapping):
            raise ValueError(f"reps[{model!r}] must map task -> array [layers, n, d], got {type(per_task).__name__}")
        stray = sorted(set(per_task) - set(clusters))
        if stray:
            raise ValueError(f"reps[{model!r}] has tasks {stray} that `tasks` lacks; add them (task -> cluster) or drop them")
        for task, value in per_task.items():
            out[task][model] = _as_layers(value, f"reps[{model!r}][{task!r}]")
    depth: dict[int, str] = {}
    for task, models in out.items():
        absent = [m for m in needed if m not in models]
        if absent:
            raise ValueError(f"task {task!r} has no {absent}; every task needs reps[m][{task!r}] for m in {list(needed)}")
        for model, (_, array) in models.items():
            depth.setdefault(array.shape[0], f"reps[{model!r}][{task!r}]")
        with_ids = {m for m, (ids, _) in models.items() if ids is not None}
        if with_ids and with_ids != set(models):
            raise ValueError(f"task {task!r}: example ids given for {sorted(with_ids)} but not for "
                             f"{sorted(set(models) - with_ids)}; give ids for every model of a task or for none")
        rows = {m: array.shape[1] for m, (_, array) in models.items()}
        if not with_ids and len(set(rows.values())) > 1:
            raise ValueError(f"task {task!r}: models have different row counts {rows}; rows must be the same examples "
                             "in the same order (or pass (example_ids, array) to match them by id)")
    if len(depth) > 1:
        raise ValueError(f"ragged layer counts: {', '.join(f'{w} has {n}' for n, w in sorted(depth.items()))}; "
                         "every (model, task) needs the same layers")
    return out


def _aligned(task: str, models: Mapping[str, tuple[list[str] | None, np.ndarray]]) -> tuple[dict[str, np.ndarray], int]:
    """The joint non-finite mask of analysis.frames.align for every task; positions stand in for absent ids,
    zero-padded so that align_and_mask's sort by id keeps the given order."""
    width = len(str(max(array.shape[1] for _, array in models.values())))
    keyed = {m: (ids if ids is not None else [f"{i:0{width}d}" for i in range(array.shape[1])], array)
             for m, (ids, array) in models.items()}
    kept, aligned, dropped = align_and_mask(keyed)
    if len(kept) < 2:
        raise ValueError(f"task {task!r}: {len(kept)} example(s) left after matching ids and dropping non-finite rows; "
                         "a similarity needs at least 2")
    return aligned, dropped


def _tuned(reps: Mapping[str, Any]) -> tuple[str, ...]:
    """The tuned experimental models: E when given, then every other label (a published checkpoint, say)."""
    return tuple(m for m in reps if m == MULTITASK) + tuple(
        m for m in reps if m not in (PRETRAINED, MULTITASK, CONTROL) and not is_reseeded(m))


def compare(
    reps: Mapping[str, Mapping[str, Any]],
    tasks: Mapping[str, str | Mapping[str, Any]],
    measures: Selection | None = None,
    *,
    primary: str | None = None,
    draws: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    control_seed: int = 0,
    bootstrap: int = 0,
    permutations: int = 0,
    calibrate: int = 0,
    standardize: bool = False,
    cross_layer: bool = False,
    pretrained_name: str = "",
    pretrained_kind: str = UNKNOWN,
) -> Comparison:
    """Compare E and the pretrained model with each task's control, layer by layer: the run's frames.

    reps[model][task]: [layers, n, d] (or a list of [n, d], or (example_ids, array)); see the module
    docstring for the labels. tasks: task -> cluster (or -> {"cluster": ..., covariates}).
    measures: registered names or (name, params) pairs (analysis.measures), default DEFAULT_MEASURES;
    primary: the pairwise measure behind cka, the noise floor and the headline findings, default the
    paper's (linear_cka). draws/level/seed: the across-task bootstrap of gaps, layer map and findings;
    control_seed: the main controls' training seed (seed_baseline's seed_a); bootstrap/permutations:
    per-(task, layer) half-sample CIs and permutation null of the primary measure; calibrate: that many
    permutations for every measure and pair, with the chance-calibrated score (analysis.frames.calibration)
    in `similarity`; pretrained_name and
    pretrained_kind (analysis.frames.inputs.KINDS) go into the findings' reasons. Gaps and verdicts need >= 5
    seen tasks for intervals and reseeded controls for a floor; with fewer they are inconclusive.

    >>> import numpy as np
    >>> from analysis import compare
    >>> rng = np.random.default_rng(0)
    >>> tasks = {"rte": "nli", "anli": "nli", "piqa": "commonsense"}
    >>> reps = {model: {task: rng.normal(size=(4, 16, 8)) for task in tasks}
    ...         for model in ("pretrained", "multitask", "control", "control@1")}
    >>> result = compare(reps, tasks, measures=["linear_cka", "pca99"], draws=200)
    >>> result.cka.height, result.seed_baseline.height   # (experimental, task, layer); (task, layer, twin)
    (24, 12)
    >>> result.cka.columns[:7]
    ['measure', 'experimental', 'control', 'task', 'cluster', 'layer', 'cka']
    >>> sorted(result.findings["verdict"].unique())      # 3 tasks are too few for an interval
    ['inconclusive']
    >>> result.layer_map["structure"].unique().to_list()
    ['none above noise']
    >>> sorted(result.frames())
    ['cka', 'findings', 'gaps', 'layer_map', 'layer_stats', 'movement', 'seed_baseline', 'similarity']
    """
    if pretrained_kind not in KINDS:
        raise ValueError(f"pretrained_kind {pretrained_kind!r} is not one of {list(KINDS)}")
    clusters, task_stats = _clusters(tasks)
    inputs = _task_inputs(reps, clusters)
    primary = primary or PAPER_MEASURES["similarity"]
    pairwise, single = split_selection(DEFAULT_MEASURES if measures is None else measures, primary)
    resolve(pairwise, "pairwise"), resolve(single, "single")  # unknown measures or parameters fail before any work
    tuned = _tuned(reps)
    per_task = []
    for task, models in inputs.items():
        aligned, dropped = _aligned(task, models)
        per_task.append(task_frames(task, clusters[task], aligned, pairwise, single, primary=primary,
                                    compared=experimentals(tuned), n_dropped=dropped, bootstrap=bootstrap,
                                    permutations=permutations, calibrate=calibrate, seed=seed, ci=level, standardize=standardize,
                                    cross_layer=cross_layer))
    frames = {name: pl.concat([f[name] for f in per_task if name in f], how="diagonal_relaxed")
              for name in (SIMILARITY, LAYER_STATS, CROSS_LAYER) if any(name in f for f in per_task)}
    opts = options_for(pairwise, single, primary, standardized=standardize, run_seed=control_seed, draws=draws,
                       level=level, seed=seed, pretrained_name=pretrained_name, pretrained_kind=pretrained_kind,
                       tuned=tuned, scores="calibrated" if calibrate else "raw")
    with warnings.catch_warnings():  # means over no task (no unseen task, say) are expected: they stay nan
        warnings.simplefilter("ignore", RuntimeWarning)
        frames |= derive_frames(frames[SIMILARITY], frames.get(LAYER_STATS), task_stats, opts)
    if task_stats is not None:
        frames[TASK_STATS] = task_stats
    return Comparison(**frames)


__all__ = ["Comparison", "compare"]
