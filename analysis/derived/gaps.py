"""Per-layer gaps between two models' similarity to the controls, with their noise floor.

For a pairwise measure s and each layer l:

    delta_t(l) = s(tuned, C_t)(l) - s(base, C_t)(l)            one value per seen task t
    delta(l)   = mean_t delta_t(l), with a paired bootstrap CI over tasks (tasks resampled with
                 replacement; both models keep their task, so the CI is the gap's own)

The noise floor says how far the gap could move by chance alone, from the controls retrained
with another seed (C'_t) on a few tasks:

    seed_distance(l) = mean_t (1 - s(C'_t, C_t)(l))            how far a control moves by its seed
    gap_shift(l)     = mean_t |delta_t(l) - delta'_t(l)|        how far the gap itself moves when
                                                                 C_t is replaced by C'_t
    floor(l)         = max(seed_distance, gap_shift)

A layer's gap is `distinguishable` only when its CI excludes zero AND |delta| exceeds the floor.
Without a measured floor (no reseeded controls) nothing is distinguishable, and with fewer than
MIN_TASKS tasks there is no interval: a percentile bootstrap over 3 or 4 tasks has only a handful
of distinct resamples and is far too narrow to trust.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.roles import CONTROL, MULTITASK, PRETRAINED, UNSEEN, is_reseeded

MIN_TASKS = 5
EPSILON = 1e-9  # differences below this are rounding, not effects (identical layers give +-1e-16)


@dataclass(frozen=True)
class TaskMatrix:
    """A measure's values as an array [tasks, layers] (NaN where undefined)."""

    tasks: list[str]
    layers: np.ndarray
    values: np.ndarray


def task_matrix(sim: pl.DataFrame, measure: str, experimental: str, control: str = CONTROL,
                tasks: list[str] | None = None) -> TaskMatrix:
    """s(experimental, control) per (task, layer) of one measure; `tasks` fixes the row order."""
    rows = sim.filter((pl.col("measure") == measure) & (pl.col("experimental") == experimental)
                      & (pl.col("control") == control))
    layers = np.sort(sim.filter(pl.col("measure") == measure)["layer"].unique().to_numpy())
    tasks = sorted(rows["task"].unique().to_list()) if tasks is None else tasks
    out = np.full((len(tasks), len(layers)), np.nan)
    t_index, l_index = {t: i for i, t in enumerate(tasks)}, {int(layer): j for j, layer in enumerate(layers)}
    for task, layer, value in rows.select("task", "layer", "value").iter_rows():
        if task in t_index and value is not None:
            out[t_index[task], l_index[int(layer)]] = value
    return TaskMatrix(tasks, layers, out)


def bootstrap_task_means(values: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """[draws, ...]: the mean over tasks (axis 0) of `values` for tasks resampled with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(draws, values.shape[0]))
    with quiet_all_nan():
        return np.nanmean(values[idx], axis=1)


def percentile_ci(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    with quiet_all_nan():
        lo, hi = np.nanquantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


@contextlib.contextmanager
def quiet_all_nan() -> Iterator[None]:
    """All-NaN columns (an undefined layer) are expected in the gaps and the claims: their mean is NaN,
    silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def seen_tasks(sim: pl.DataFrame) -> list[str]:
    return sorted(sim.filter(pl.col("cluster") != UNSEEN)["task"].unique().to_list())


def unseen_tasks(sim: pl.DataFrame) -> list[str]:
    return sorted(sim.filter(pl.col("cluster") == UNSEEN)["task"].unique().to_list())


def reseeded_labels(sim: pl.DataFrame) -> list[str]:
    return sorted(label for label in sim["experimental"].unique().to_list() if is_reseeded(label))


def noise_floor(sim: pl.DataFrame, measure: str, base: str = PRETRAINED, tuned: str = MULTITASK) -> pl.DataFrame:
    """Per layer: seed_distance, gap_shift and floor (see the module docstring), n_floor_tasks.

    Empty when no control was retrained with another seed."""
    parts = []
    for twin in reseeded_labels(sim):
        same = task_matrix(sim, measure, twin)  # s(C'_t, C_t)
        if not same.tasks:
            continue
        gap = (task_matrix(sim, measure, tuned, tasks=same.tasks).values
               - task_matrix(sim, measure, base, tasks=same.tasks).values)
        gap_twin = (task_matrix(sim, measure, tuned, twin, tasks=same.tasks).values
                    - task_matrix(sim, measure, base, twin, tasks=same.tasks).values)
        parts.append((same.layers, 1.0 - same.values, np.abs(gap - gap_twin)))
    schema = {"layer": pl.Int64, "seed_distance": pl.Float64, "gap_shift": pl.Float64, "floor": pl.Float64,
              "n_floor_tasks": pl.Int64}
    if not parts:
        return pl.DataFrame(schema=schema)
    layers = parts[0][0]
    distance = np.concatenate([p[1] for p in parts])
    shift = np.concatenate([p[2] for p in parts])
    with quiet_all_nan():
        seed_distance, gap_shift = np.nanmean(distance, axis=0), np.nanmean(shift, axis=0)
    return pl.DataFrame({"layer": layers.astype(np.int64), "seed_distance": seed_distance, "gap_shift": gap_shift,
                         "floor": np.fmax(seed_distance, gap_shift),
                         "n_floor_tasks": np.isfinite(distance).sum(axis=0).astype(np.int64)}, schema=schema)


def gap_frame(sim: pl.DataFrame, measure: str, tasks: list[str], *, draws: int = 2000, level: float = 0.95,
              seed: int = 0, base: str = PRETRAINED, tuned: str = MULTITASK, group: str = "seen") -> pl.DataFrame:
    """Per layer of one measure: base and tuned mean similarity, delta with its task-bootstrap CI,
    the noise floor and whether the gap is distinguishable from it.

    Columns: measure, group, layer, base_mean, tuned_mean, delta, ci_low, ci_high, n_tasks,
    seed_distance, gap_shift, floor, distinguishable."""
    b = task_matrix(sim, measure, base, tasks=tasks)
    t = task_matrix(sim, measure, tuned, tasks=tasks)
    deltas = t.values - b.values
    with quiet_all_nan():
        delta = np.nanmean(deltas, axis=0)
        base_mean, tuned_mean = np.nanmean(b.values, axis=0), np.nanmean(t.values, axis=0)
    if len(tasks) >= MIN_TASKS:
        lo, hi = percentile_ci(bootstrap_task_means(deltas, draws, seed), level)
    else:  # too few tasks for an interval worth the name
        lo = hi = np.full(len(b.layers), np.nan)
    frame = pl.DataFrame({"layer": b.layers.astype(np.int64), "base_mean": base_mean, "tuned_mean": tuned_mean,
                          "delta": delta, "ci_low": lo, "ci_high": hi,
                          "n_tasks": np.isfinite(deltas).sum(axis=0).astype(np.int64)})
    floor = noise_floor(sim, measure, base, tuned)
    if floor.is_empty():
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias(c) for c in ("seed_distance", "gap_shift", "floor"))
    else:
        frame = frame.join(floor.drop("n_floor_tasks"), on="layer", how="left")
    excludes_zero = (pl.col("ci_low") > 0) | (pl.col("ci_high") < 0)
    frame = frame.with_columns(pl.selectors.float().fill_nan(None)).with_columns(
        (excludes_zero & pl.col("floor").is_not_null()
         & (pl.col("delta").abs() > pl.max_horizontal(pl.col("floor"), pl.lit(EPSILON))))
        .fill_null(False).alias("distinguishable"))
    return frame.with_columns(pl.lit(measure).alias("measure"), pl.lit(group).alias("group")).select(
        "measure", "group", "layer", "base_mean", "tuned_mean", "delta", "ci_low", "ci_high", "n_tasks",
        "seed_distance", "gap_shift", "floor", "distinguishable")
