"""Every derived frame, built once from the measured ones (the report only reads them).

In: `similarity` (pairwise measures per experimental, control, task, layer), `layer_stats` (single
measures per model, task, layer) and `task_stats` (readability, size). Out:

    cka            the primary measure's rows against C_t, in the paper's long form
    seed_baseline  the primary measure between each control and its reseeded twin
    movement       per layer: how far the controls moved from the pretrained model against how far
                   a control moves by its seed alone (1 - s, medians over tasks) and their ratio
    gaps           per (experimental, measure, group, layer): E - pretrained with CI and noise floor (analysis.derived.gaps)
    layer_map      per (experimental, measure, layer): shared / transition / refinement, only above noise
    findings       per (experimental, measure, claim): value, CI, floor, verdict (analysis.claims.findings); the reasons
                   of claims against the pretrained model say when it is not a base checkpoint, and those of
                   claims reading C_t name the controls that did not learn their task (given `learned`)
    correlations   per (experimental, layer, covariate): Pearson and Spearman with p-values
    unseen         seen vs unseen summaries per layer (of the primary tuned model)
    score_cka      per (experimental, task): its task score (given the evaluate stage's eval frame) against its
                   mean primary similarity to C_t over the primary map's transition layers (analysis.frames.scores)

The `experimental` column of gaps, layer_map and findings names the tuned model in E's place: E
("multitask") when the run trains it, and each published checkpoint (model.experimental) by its
label; the first of `DeriveOptions.tuned` is the primary one the report's headline reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.claims.findings import findings_frame
from analysis.derived.correlate import correlation_frame
from analysis.derived.gaps import gap_frame, seen_tasks, task_matrix, unseen_tasks
from analysis.derived.layer_map import layer_groups, layer_map_frame
from analysis.derived.learned import control_verdicts
from analysis.derived.unseen import unseen_frame
from analysis.frames.inputs import UNKNOWN
from analysis.frames.scores import score_cka_frame
from analysis.measures import PAPER_MEASURES, measure_info
from analysis.roles import (
    CKA,
    CONTROL,
    CORRELATIONS,
    FINDINGS,
    GAPS,
    LAYER_MAP,
    MOVEMENT,
    MULTITASK,
    PRETRAINED,
    SCORE_CKA,
    SEED_BASELINE,
    UNSEEN_FRAME,
    experimentals,
    is_reseeded,
    seed_of,
)


@dataclass(frozen=True)
class DeriveOptions:
    primary: str                       # the pairwise measure behind cka, the floor band and the headline
    measures: Sequence[str]            # every pairwise measure to map (primary included)
    dimensionality: str | None         # the single measure the PCA-dimensions claim is stated in
    standardized: bool = False         # which rows of `similarity` to use
    run_seed: int = 0                  # the training seed of the main controls
    draws: int = 2000
    level: float = 0.95
    seed: int = 0
    estimator: dict | None = None      # the primary's estimator columns for cka (kernel, debiased, threshold)
    pretrained_name: str = ""          # the config's model name, as the findings' reasons name it
    pretrained_kind: str = UNKNOWN     # analysis.frames.inputs.KINDS: base, instruction_tuned, unknown, random_init
    # The tuned experimental models, each compared with C_t and with the pretrained model like E; the first is primary.
    tuned: Sequence[str] = (MULTITASK,)
    # "calibrated": gaps, layer map and findings read the chance-calibrated score (analysis.calibrate) of
    # every measure that has one (its `perfect` value is known), so models of different width compare;
    # "raw": the measure's value. Their `scores` column says which each row used.
    scores: str = "raw"


def options_for(pairwise: Sequence[tuple[str, dict]], single: Sequence[tuple[str, dict]], primary: str,
                **rest) -> DeriveOptions:
    """DeriveOptions whose measure fields follow a split selection (analysis.frames.task_frames.split_selection):
    every pairwise measure mapped, the paper's dimensionality measure when selected, the primary's
    estimator columns when it is CKA-type. `rest`: the other DeriveOptions fields."""
    dims = PAPER_MEASURES["dimensionality"]
    info = measure_info(primary)
    estimator = info.estimator_columns(dict(pairwise).get(primary, {})) if info.estimator is not None else None
    return DeriveOptions(primary=primary, measures=[name for name, _ in pairwise],
                         dimensionality=dims if dims in {name for name, _ in single} else None, estimator=estimator,
                         **rest)


def cka_frame(sim: pl.DataFrame, opts: DeriveOptions) -> pl.DataFrame:
    est = opts.estimator or {}
    rows = sim.filter((pl.col("measure") == opts.primary) & pl.col("experimental").is_in(list(experimentals(opts.tuned)))
                      & (pl.col("control") == CONTROL))
    return rows.rename({"value": CKA}).with_columns(
        pl.lit(est.get("kernel"), pl.String).alias("kernel"),
        pl.lit(est.get("debiased"), pl.Boolean).alias("debiased"),
        pl.lit(est.get("threshold"), pl.Float64).alias("threshold"),
    ).sort("experimental", "task", "layer")


def seed_baseline_frame(sim: pl.DataFrame, opts: DeriveOptions) -> pl.DataFrame:
    """One row per (task, layer, twin): the primary measure between C_t and C_t retrained with seed_b."""
    rows = sim.filter((pl.col("measure") == opts.primary) & (pl.col("control") == CONTROL)
                      & pl.col("experimental").map_elements(is_reseeded, return_dtype=pl.Boolean))
    schema = {"task": pl.String, "cluster": pl.String, "layer": pl.Int64, CKA: pl.Float64, "n": pl.Int64,
              "seed_a": pl.Int64, "seed_b": pl.Int64, "measure": pl.String}
    if rows.is_empty():
        return pl.DataFrame(schema=schema)
    return rows.select(
        "task", "cluster", pl.col("layer").cast(pl.Int64), pl.col("value").alias(CKA), pl.col("n").cast(pl.Int64),
        pl.lit(opts.run_seed, pl.Int64).alias("seed_a"),
        pl.col("experimental").map_elements(seed_of, return_dtype=pl.Int64).alias("seed_b"),
        pl.col("measure"),
    ).sort("task", "layer", "seed_b")


def movement_frame(cka: pl.DataFrame, seed_baseline: pl.DataFrame) -> pl.DataFrame:
    """Did the controls measurably move? Per layer: median over tasks of 1 - s(pretrained, C_t),
    median over the baseline tasks of 1 - s(C_t, C_t'), and the ratio of the two."""
    moved = (cka.filter(pl.col("experimental") == PRETRAINED).group_by("layer")
             .agg((1 - pl.col(CKA)).median().alias("control_distance"), pl.col("task").n_unique().alias("n_tasks")))
    if seed_baseline.is_empty():
        return moved.with_columns(pl.lit(None, pl.Float64).alias("seed_distance"),
                                  pl.lit(None, pl.Float64).alias("ratio")).sort("layer")
    floor = seed_baseline.group_by("layer").agg((1 - pl.col(CKA)).median().alias("seed_distance"))
    return (moved.join(floor, on="layer", how="left")
            .with_columns((pl.col("control_distance") / pl.col("seed_distance")).alias("ratio")).sort("layer"))


def _task_deltas(sim: pl.DataFrame, measure: str, tasks: list[str], tuned: str = MULTITASK) -> np.ndarray:
    return (task_matrix(sim, measure, tuned, tasks=tasks).values
            - task_matrix(sim, measure, PRETRAINED, tasks=tasks).values)


def _scored(sim: pl.DataFrame, measure: str, scores: str) -> tuple[pl.DataFrame, str]:
    """`sim` with `value` the calibrated score where asked and the measure has one; and which it is."""
    if scores != "calibrated" or measure_info(measure).perfect is None or "calibrated" not in sim.columns:
        return sim, "raw"
    rows = sim.filter(pl.col("measure") == measure)
    if rows["calibrated"].is_null().all():
        return sim, "raw"
    return sim.with_columns(pl.when(pl.col("measure") == measure).then(pl.col("calibrated")).otherwise(pl.col("value"))
                            .alias("value")), "calibrated"


def score_cka(task_scores: pl.DataFrame, cka: pl.DataFrame, layer_map: pl.DataFrame, opts: DeriveOptions) -> pl.DataFrame:
    """The score_cka frame: `task_scores` (the eval frame) against similarity over the transition layers of the
    primary tuned model's map in the primary measure; those layers in its `layers` column."""
    primary_map = layer_map.filter((pl.col("experimental") == opts.tuned[0]) & (pl.col("measure") == opts.primary))
    groups, _ = layer_groups(primary_map, sorted(cka["layer"].unique().to_list()))
    layers = groups["transition"]
    return score_cka_frame(task_scores, cka, layers).with_columns(pl.lit(layers, pl.List(pl.Int64)).alias("layers"))


def derive_frames(similarity: pl.DataFrame, layer_stats: pl.DataFrame | None, task_stats: pl.DataFrame | None,
                  opts: DeriveOptions, learned: pl.DataFrame | None = None,
                  task_scores: pl.DataFrame | None = None) -> dict[str, pl.DataFrame]:
    """`learned`: the evaluate stage's learned frame (analysis.derived.learned), whose control verdicts go into the
    findings' reasons; a control without a row there was not checked. None: not tracked, no note.
    `task_scores`: the evaluate stage's eval frame, for score_cka; None: no scores, no score_cka."""
    control_learned = None if learned is None else control_verdicts(learned)
    sim = similarity.filter(pl.col("standardized") == opts.standardized) if "standardized" in similarity.columns \
        else similarity
    frames = {CKA: cka_frame(sim, opts), SEED_BASELINE: seed_baseline_frame(sim, opts)}
    frames[MOVEMENT] = movement_frame(frames[CKA], frames[SEED_BASELINE])
    seen, unseen = seen_tasks(sim), unseen_tasks(sim)
    gaps, maps, findings = [], [], []
    for tuned in opts.tuned:
        for measure in opts.measures:
            rows, scores = _scored(sim, measure, opts.scores)
            label = [pl.lit(tuned).alias("experimental"), pl.lit(scores).alias("scores")]
            kw = {"draws": opts.draws, "level": opts.level, "seed": opts.seed}
            seen_gaps = gap_frame(rows, measure, seen, group="seen", tuned=tuned, **kw)
            gaps.append(seen_gaps.with_columns(label))
            if unseen:
                gaps.append(gap_frame(rows, measure, unseen, group="unseen", tuned=tuned, **kw).with_columns(label))
            layer_map = layer_map_frame(seen_gaps, _task_deltas(rows, measure, seen, tuned), **kw)
            maps.append(layer_map.with_columns(label))
            groups, source = layer_groups(layer_map, seen_gaps["layer"].to_list())
            floor = dict(zip(seen_gaps["layer"].to_list(), seen_gaps["floor"].to_list()))
            floor = {layer: value for layer, value in floor.items() if value is not None}
            findings.append(findings_frame(
                rows, measure, groups, source, floor, stats=task_stats, layer_stats=layer_stats,
                dimension_measure=opts.dimensionality if measure == opts.primary else None,
                pretrained_name=opts.pretrained_name, pretrained_kind=opts.pretrained_kind, tuned=tuned,
                control_learned=control_learned, **kw).with_columns(label))
    frames[GAPS] = pl.concat(gaps)
    frames[LAYER_MAP] = pl.concat(maps)
    frames[FINDINGS] = pl.concat(findings)
    cka = frames[CKA]
    if unseen and seen:
        frames[UNSEEN_FRAME] = unseen_frame(cka, tuned=opts.tuned[0])
    if task_stats is not None and len(seen) >= 3:
        frames[CORRELATIONS] = correlation_frame(cka, task_stats)
    if task_scores is not None:
        frames[SCORE_CKA] = score_cka(task_scores, cka, frames[LAYER_MAP], opts)
    return frames
