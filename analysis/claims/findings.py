"""A verdict on each of the paper's claims, with its statistic, CI and the noise floor.

Every claim is reduced to one number per task (or one statistic over tasks), averaged over the
layers of a functional group (shared / transition / refinement: this run's layer map when it
stands above noise, else the paper's boundaries scaled to the model's depth), with a bootstrap CI
over tasks. The verdict is

  holds         the CI lies entirely on the side the paper states AND the effect exceeds the
                noise floor (the seed-to-seed floor of analysis.derived.gaps, averaged over the same layers);
  contradicted  the CI lies entirely on the other side AND the effect exceeds the floor;
  inconclusive  otherwise: the CI crosses zero, the effect is within the floor, there is no floor,
                fewer than MIN_TASKS tasks (analysis.derived.gaps), or the input has no variance.

The claims a run tests (`CLAIMS`, each registered with `@claim`; the dimensions claim only with a
dimensionality measure) are tested at once, so the intervals are simultaneous: each is a
Bonferroni-adjusted (1 - (1 - level) / claims) percentile interval, and the `ci_level` column says which. Without
that, one claim in twenty would "hold" on pure noise.

Claim 7 (no correlation with data size) is an absence claim: it holds only when the whole CI of
the correlation lies within +-EQUIVALENCE, the conventional bound of a weak correlation.

The paper's pretrained model is a base checkpoint. Every claim whose statistic involves
s(pretrained, C_t) (COMPARES_PRETRAINED) says in its reason when this run's pretrained model is
not one (instruction-tuned, unknown, or a random initialisation; analysis.frames.inputs.baseline_note):
the verdict is what the statistics say, the reason says what question it answers.

Every claim whose statistic involves C_t rests on the controls having learned their task (MOSSA's
premise). Each registers whose controls it reads (`controls`: the seen tasks', the unseen tasks', or
None); given the controls' learned-or-not verdicts (analysis.derived.learned), its reason names those
controls that did not learn their task, were inconclusive, or were not checked. The verdict itself
is unchanged: the reason says what it rests on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.derived.gaps import (
    EPSILON,
    MIN_TASKS,
    TaskMatrix,
    percentile_ci,
    quiet_all_nan,
    seen_tasks,
    task_matrix,
    unseen_tasks,
)
from analysis.derived.learned import learned_note
from analysis.frames.inputs import UNKNOWN, baseline_note
from analysis.roles import CONTROL, MULTITASK, PRETRAINED, is_reseeded

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
VERDICTS = (HOLDS, CONTRADICTED, INCONCLUSIVE)
EQUIVALENCE = 0.3
DIMENSIONS_CLAIM = "multitask_more_dimensions_upper"
COLUMNS = ("measure", "claim", "statement", "statistic", "value", "ci_low", "ci_high", "ci_level", "floor",
           "n_tasks", "verdict", "reason", "layers_from")
# The claims whose statistic involves s(pretrained, C_t): what they say depends on what the pretrained model is.
COMPARES_PRETRAINED = frozenset({
    "pretrained_declines_with_depth", "multitask_below_pretrained_shared", "multitask_above_pretrained_upper",
    "multitask_less_varied_upper", DIMENSIONS_CLAIM, "readability_correlation_stronger_multitask",
    "unseen_pretrained_above_lower", "unseen_multitask_above_upper"})


@dataclass(frozen=True)
class Context:
    sim: pl.DataFrame
    measure: str
    groups: dict[str, list[int]]     # function -> layers
    layers_from: str
    floor: dict[int, float]          # layer -> noise floor of `measure` (empty: none measured)
    draws: int
    level: float
    seed: int
    tuned: str = MULTITASK           # the experimental model in E's place (E, or a published checkpoint)

    @property
    def upper(self) -> list[int]:
        return self.groups["transition"] + self.groups["refinement"]

    def floor_over(self, layers: list[int]) -> float:
        values = [self.floor[la] for la in layers if la in self.floor and np.isfinite(self.floor[la])]
        return float(np.mean(values)) if values else float("nan")

    def matrix(self, experimental: str, tasks: list[str]) -> TaskMatrix:
        return task_matrix(self.sim, self.measure, experimental, tasks=tasks)


def _columns_of(m: TaskMatrix, layers: list[int]) -> np.ndarray:
    return np.isin(m.layers, layers)


def _per_task_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with quiet_all_nan():
        return np.nanmean(values[:, mask], axis=1)


def _bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n_tasks: int, ctx: Context) -> tuple[float, float, float]:
    """The statistic on all tasks, and its percentile CI over tasks resampled with replacement.

    `statistic` maps task indices (..., n_tasks) to one value per leading index, so every draw is
    computed in one call (the draws are the ones a loop of `rng.integers(0, n, n)` gives)."""
    rng = np.random.default_rng(ctx.seed)
    with quiet_all_nan():
        value = float(statistic(np.arange(n_tasks)))
        draws = statistic(rng.integers(0, n_tasks, (ctx.draws, n_tasks)))
    if n_tasks < MIN_TASKS or not np.isfinite(draws).any():
        return value, float("nan"), float("nan")
    lo, hi = percentile_ci(draws, ctx.level)
    return value, float(lo), float(hi)


def _too_few(n_tasks: int) -> tuple[str, str]:
    return INCONCLUSIVE, f"only {n_tasks} task{'' if n_tasks == 1 else 's'} (needs >= {MIN_TASKS})"


def verdict(value: float, lo: float, hi: float, floor: float, expected_sign: int, *, needs_floor: bool = True,
            n_tasks: int = 0) -> tuple[str, str]:
    """(verdict, reason) for a directional claim whose expected sign is +1 or -1."""
    if n_tasks < MIN_TASKS:
        return _too_few(n_tasks)
    if not (np.isfinite(value) and np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE, "undefined (an input without variance)"
    if needs_floor and not np.isfinite(floor):
        return INCONCLUSIVE, "no noise floor was measured (baseline.seeds is empty)"
    above = abs(value) > max(floor if needs_floor else 0.0, EPSILON)
    expected_side = lo > 0 if expected_sign > 0 else hi < 0
    opposite_side = hi < 0 if expected_sign > 0 else lo > 0
    if expected_side:
        return (HOLDS, "CI excludes zero, effect above the noise floor") if above else \
            (INCONCLUSIVE, f"CI excludes zero but |effect| {abs(value):.3g} is within the noise floor {floor:.3g}")
    if opposite_side:
        return (CONTRADICTED, "CI excludes zero on the opposite side, effect above the noise floor") if above else \
            (INCONCLUSIVE, f"opposite sign but |effect| {abs(value):.3g} is within the noise floor {floor:.3g}")
    return INCONCLUSIVE, "CI includes zero"


def _row(ctx: Context, claim: str, statement: str, statistic: str, value: float, lo: float, hi: float,
         floor: float, n_tasks: int, outcome: tuple[str, str], measure: str | None = None) -> dict:
    return {"measure": measure or ctx.measure, "claim": claim, "statement": statement, "statistic": statistic,
            "value": value, "ci_low": lo, "ci_high": hi, "floor": floor, "n_tasks": n_tasks,
            "verdict": outcome[0], "reason": outcome[1], "layers_from": ctx.layers_from}


def _gap_claim(ctx: Context, claim: str, statement: str, tasks: list[str], layers: list[int], sign: int,
               where: str) -> dict:
    e, p = ctx.matrix(ctx.tuned, tasks), ctx.matrix(PRETRAINED, tasks)
    x = _per_task_mean(e.values - p.values, _columns_of(e, layers))
    value, lo, hi = _bootstrap(_mean_over(x), len(tasks), ctx)
    floor = ctx.floor_over(layers)
    stat = f"mean over {where} tasks and layers {_span(layers)} of s(E, C_t) - s(pretrained, C_t)"
    return _row(ctx, claim, statement, stat, value, lo, hi, floor, len(tasks),
                verdict(value, lo, hi, floor, sign, n_tasks=len(tasks)))


def _span(layers: list[int]) -> str:
    return f"{min(layers)}-{max(layers)}" if layers else "(none)"


def _mean_over(x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The bootstrap statistic "mean of the per-task values x over the tasks idx"."""
    return lambda idx: np.nanmean(x[idx], axis=-1)


def _correlations(values: np.ndarray, covariate: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Pearson r per layer between the covariate and the values, over tasks idx (..., n) (NaN if
    constant): shape (..., layers)."""
    x = covariate[idx][..., None]
    y = values[idx]
    with quiet_all_nan():
        xc, yc = x - np.nanmean(x, axis=-2, keepdims=True), y - np.nanmean(y, axis=-2, keepdims=True)
        return np.nansum(xc * yc, axis=-2) / np.sqrt(np.nansum(xc**2, axis=-2) * np.nansum(yc**2, axis=-2))


_READABILITY = {
    "readability_correlates_multitask": "E's similarity to the controls correlates positively with the instructions' "
                                        "Flesch-Kincaid grade, from the transition layers on.",
    "readability_correlation_stronger_multitask": "That correlation is weaker for the pretrained model.",
}


def _covariate(stats: pl.DataFrame | None, tasks: list[str], column: str) -> np.ndarray | None:
    if stats is None or column not in stats.columns:
        return None
    values = dict(zip(stats["task"].to_list(), stats[column].to_list()))
    x = np.array([values.get(t, np.nan) for t in tasks], dtype=np.float64)
    return None if not np.isfinite(x).all() or np.ptp(x) == 0 else x


# --- the claims, in the paper's order: each is one registered function --------------------------

@dataclass(frozen=True)
class Inputs:
    """What the claims read besides the similarity frame."""

    seen: list[str]
    unseen: list[str]
    stats: pl.DataFrame | None = None        # task_stats: train_size, readability
    layer_stats: pl.DataFrame | None = None  # single-model measures per (model, task, layer)
    dimension_measure: str | None = None     # the dimensionality measure, for the primary measure only


SEEN, UNSEEN_TASKS = "seen", "unseen"  # whose controls a claim rests on


@dataclass(frozen=True)
class Claim:
    rows: tuple[str, ...]                         # the claim names it writes, in order
    evaluate: Callable[[Context, Inputs], list[dict]]
    applies: Callable[[Inputs], bool]             # False: not tested in this run (outside the family)
    controls: str | None = SEEN                   # its statistic reads C_t of the seen or unseen tasks; None: no C_t

    def rests_on(self, inputs: Inputs) -> list[str]:
        """The tasks whose controls the claim's statistic reads."""
        return {SEEN: inputs.seen, UNSEEN_TASKS: inputs.unseen}.get(self.controls, [])


CLAIMS: list[Claim] = []  # registration order is the report's order


def claim(*rows: str, applies: Callable[[Inputs], bool] = lambda inputs: True,
          controls: str | None = SEEN) -> Callable:
    """Register a claim function that writes the findings rows `rows` (one row per name, in order);
    `controls`: whose controls its statistic reads (SEEN, UNSEEN_TASKS, or None when it reads no C_t)."""
    def register(fn: Callable[[Context, Inputs], list[dict]]) -> Callable:
        CLAIMS.append(Claim(rows, fn, applies, controls))
        return fn
    return register


def claims_for(inputs: Inputs) -> list[Claim]:
    """The claims a run tests: together they are the Bonferroni family of its intervals."""
    return [c for c in CLAIMS if c.applies(inputs)]


@claim("pretrained_declines_with_depth")
def claim_pretrained_declines(ctx: Context, inputs: Inputs) -> list[dict]:
    tasks = inputs.seen
    p = ctx.matrix(PRETRAINED, tasks)
    shared, upper = _columns_of(p, ctx.groups["shared"]), _columns_of(p, ctx.upper)
    x = _per_task_mean(p.values, upper) - _per_task_mean(p.values, shared)
    value, lo, hi = _bootstrap(_mean_over(x), len(tasks), ctx)
    floor = ctx.floor_over(ctx.upper)
    return [_row(ctx, "pretrained_declines_with_depth", "Pretrained-vs-C_t similarity declines with depth.",
                "mean over seen tasks of s(pretrained, C_t) in the transition+refinement layers minus in the shared "
                "layers", value, lo, hi, floor, len(tasks), verdict(value, lo, hi, floor, -1, n_tasks=len(tasks)))]


@claim("multitask_below_pretrained_shared")
def claim_below_pretrained_shared(ctx: Context, inputs: Inputs) -> list[dict]:
    return [_gap_claim(ctx, "multitask_below_pretrained_shared", "E is below the pretrained model in the shared layers.",
                       inputs.seen, ctx.groups["shared"], -1, "seen")]


@claim("multitask_above_pretrained_upper")
def claim_above_pretrained_upper(ctx: Context, inputs: Inputs) -> list[dict]:
    return [_gap_claim(ctx, "multitask_above_pretrained_upper", "E is above the pretrained model from the transition layers on.",
                       inputs.seen, ctx.upper, +1, "seen")]


@claim("multitask_less_varied_upper")
def claim_less_varied(ctx: Context, inputs: Inputs) -> list[dict]:
    tasks = inputs.seen
    e, p = ctx.matrix(ctx.tuned, tasks), ctx.matrix(PRETRAINED, tasks)
    upper = _columns_of(e, ctx.upper)

    def spread_gap(idx: np.ndarray) -> np.ndarray:  # _bootstrap quiets all-NaN slices
        return np.nanmean(np.nanstd(e.values[idx][..., upper], axis=-2, ddof=1)
                          - np.nanstd(p.values[idx][..., upper], axis=-2, ddof=1), axis=-1)

    value, lo, hi = _bootstrap(spread_gap, len(tasks), ctx)
    floor = ctx.floor_over(ctx.upper)
    return [_row(ctx, "multitask_less_varied_upper",
                "E's similarity to the controls varies less across tasks than the pretrained model's in the upper "
                "layers.", f"mean over layers {_span(ctx.upper)} of std over seen tasks of s(E, C_t) minus that of "
                "s(pretrained, C_t)", value, lo, hi, floor, len(tasks),
                verdict(value, lo, hi, floor, -1, n_tasks=len(tasks)))]


# E's and the pretrained model's own dimensions: no C_t in the statistic (only in its floor's twins).
@claim(DIMENSIONS_CLAIM, applies=lambda inputs: inputs.dimension_measure is not None, controls=None)
def claim_dimensions(ctx: Context, inputs: Inputs) -> list[dict]:
    layer_stats, dimension_measure, tasks = inputs.layer_stats, inputs.dimension_measure, inputs.seen
    statement = "E needs more principal components (99% of the variance) than the pretrained model from the " \
                "transition layers on."
    stat = f"mean over seen tasks and layers {_span(ctx.upper)} of {dimension_measure}(E) - {dimension_measure}(pretrained)"
    if layer_stats is None or not (layer_stats["measure"] == dimension_measure).any():
        return [_row(ctx, DIMENSIONS_CLAIM, statement, stat, float("nan"), float("nan"), float("nan"),
                     float("nan"), 0, (INCONCLUSIVE, f"{dimension_measure} was not computed"), dimension_measure)]
    dims = layer_stats.filter(pl.col("measure") == dimension_measure).rename({"model": "experimental"}).with_columns(
        pl.lit(CONTROL).alias("control"))
    m = lambda model, ts: task_matrix(dims, dimension_measure, model, tasks=ts)
    e, p = m(ctx.tuned, tasks), m(PRETRAINED, tasks)
    upper = _columns_of(e, ctx.upper)
    x = _per_task_mean(e.values - p.values, upper)
    value, lo, hi = _bootstrap(_mean_over(x), len(tasks), ctx)
    # Floor: how far the measure moves between a control and its reseeded twin, same layers.
    shifts = []
    for twin in sorted({t for t in dims["experimental"].unique().to_list() if is_reseeded(t)}):
        twin_tasks = sorted(dims.filter(pl.col("experimental") == twin)["task"].unique().to_list())
        a, b = m(CONTROL, twin_tasks), m(twin, twin_tasks)
        shifts.append(np.abs(a.values - b.values)[:, upper])
    with quiet_all_nan():
        floor = float(np.nanmean(np.concatenate(shifts, axis=0))) if shifts else float("nan")
    if np.isfinite(value) and value == 0 and lo == 0 and hi == 0:
        outcome = (INCONCLUSIVE, "both models need the same number of components everywhere (at the rank cap?)")
    else:
        outcome = verdict(value, lo, hi, floor, +1, n_tasks=len(tasks))
    return [_row(ctx, DIMENSIONS_CLAIM, statement, stat, value, lo, hi, floor, len(tasks), outcome,
                 dimension_measure)]


@claim("readability_correlates_multitask", "readability_correlation_stronger_multitask")
def claim_readability(ctx: Context, inputs: Inputs, measure: str = "flesch_kincaid") -> list[dict]:
    tasks, stats = inputs.seen, inputs.stats
    fk = _covariate(stats, tasks, measure)
    e, p = ctx.matrix(ctx.tuned, tasks), ctx.matrix(PRETRAINED, tasks)
    upper = _columns_of(e, ctx.upper)
    if fk is None:
        rows = []
        for claim in ("readability_correlates_multitask", "readability_correlation_stronger_multitask"):
            rows.append(_row(ctx, claim, _READABILITY[claim], "", float("nan"), float("nan"), float("nan"),
                             float("nan"), len(tasks), (INCONCLUSIVE, f"{measure} has no variance across tasks")))
        return rows
    r_e = lambda idx: np.nanmean(_correlations(e.values, fk, idx)[..., upper], axis=-1)
    r_gap = lambda idx: np.nanmean((_correlations(e.values, fk, idx) - _correlations(p.values, fk, idx))[..., upper],
                                   axis=-1)
    out = []
    for claim, stat, fn in (
            ("readability_correlates_multitask", f"mean over layers {_span(ctx.upper)} of Pearson r across seen tasks "
             f"between {measure} and s(E, C_t)", r_e),
            ("readability_correlation_stronger_multitask", f"mean over layers {_span(ctx.upper)} of r({measure}, "
             "s(E, C_t)) - r(" + measure + ", s(pretrained, C_t))", r_gap)):
        value, lo, hi = _bootstrap(fn, len(tasks), ctx)
        out.append(_row(ctx, claim, _READABILITY[claim], stat, value, lo, hi, float("nan"), len(tasks),
                        verdict(value, lo, hi, float("nan"), +1, needs_floor=False, n_tasks=len(tasks))))
    return out


@claim("no_data_size_correlation")
def claim_data_size(ctx: Context, inputs: Inputs) -> list[dict]:
    tasks, stats = inputs.seen, inputs.stats
    statement = "Similarity to the controls does not correlate with the task's training-set size."
    size = _covariate(stats, tasks, "train_size")
    if size is None:
        return [_row(ctx, "no_data_size_correlation", statement, "", float("nan"), float("nan"), float("nan"),
                     float("nan"), len(tasks), (INCONCLUSIVE, "train_size has no variance across tasks"))]
    e = ctx.matrix(ctx.tuned, tasks)
    value, lo, hi = _bootstrap(lambda idx: np.nanmean(_correlations(e.values, size, idx), axis=-1), len(tasks), ctx)
    if len(tasks) < MIN_TASKS:
        outcome = _too_few(len(tasks))
    elif not (np.isfinite(lo) and np.isfinite(hi)):
        outcome = (INCONCLUSIVE, "undefined")
    elif -EQUIVALENCE < lo and hi < EQUIVALENCE:
        outcome = (HOLDS, f"the whole CI lies within +-{EQUIVALENCE} (at most a weak correlation)")
    elif lo > 0 or hi < 0:
        outcome = (CONTRADICTED, "CI excludes zero")
    else:
        outcome = (INCONCLUSIVE, f"CI [{lo:.3g}, {hi:.3g}] includes zero but reaches beyond +-{EQUIVALENCE}, so a "
                                 "correlation of that size is not ruled out")
    return [_row(ctx, "no_data_size_correlation", statement,
                 "mean over all layers of Pearson r across seen tasks between train_size and s(E, C_t)",
                 value, lo, hi, float("nan"), len(tasks), outcome)]


@claim("unseen_pretrained_above_lower", controls=UNSEEN_TASKS)
def claim_unseen_pretrained_above_lower(ctx: Context, inputs: Inputs) -> list[dict]:
    return [_gap_claim(ctx, "unseen_pretrained_above_lower",
                       "On unseen tasks the pretrained model is at or above E in the lower (shared) layers.",
                       inputs.unseen, ctx.groups["shared"], -1, "unseen")]


@claim("unseen_multitask_above_upper", controls=UNSEEN_TASKS)
def claim_unseen_multitask_above_upper(ctx: Context, inputs: Inputs) -> list[dict]:
    return [_gap_claim(ctx, "unseen_multitask_above_upper",
                       "On unseen tasks E is at or above the pretrained model in the higher layers.",
                       inputs.unseen, ctx.upper, +1, "unseen")]


def findings_frame(sim: pl.DataFrame, measure: str, groups: dict[str, list[int]], layers_from: str,
                   floor: Mapping[int, float], *, stats: pl.DataFrame | None = None,
                   layer_stats: pl.DataFrame | None = None, dimension_measure: str | None = None,
                   draws: int = 2000, level: float = 0.95, seed: int = 0, pretrained_name: str = "",
                   pretrained_kind: str = UNKNOWN, tuned: str = MULTITASK,
                   control_learned: Mapping[str, str] | None = None) -> pl.DataFrame:
    """One row per claim of the paper for one pairwise measure (+ the dimensionality claim when
    `dimension_measure` is given). Columns: COLUMNS. `pretrained_name` and `pretrained_kind`
    (analysis.frames.inputs.KINDS) say what the pretrained model is; the reason of every claim in
    COMPARES_PRETRAINED says so unless it is a base checkpoint. `tuned`: the experimental model the claims
    test in E's place (E by default; a published checkpoint's label). `control_learned`: task -> whether
    C_t learned it (analysis.derived.learned.control_verdicts; a task missing: not checked); the reason of every
    claim reading C_t names the controls it rests on that did not learn. None: not tracked, no note."""
    inputs = Inputs(seen_tasks(sim), unseen_tasks(sim), stats, layer_stats, dimension_measure)
    family = claims_for(inputs)
    simultaneous = 1 - (1 - level) / sum(len(c.rows) for c in family)
    ctx = Context(sim, measure, groups, layers_from, dict(floor), draws, simultaneous, seed, tuned)
    rows = [row for c in family for row in c.evaluate(ctx, inputs)]
    if [row["claim"] for row in rows] != [name for c in family for name in c.rows]:
        raise RuntimeError("a registered claim wrote rows other than the ones it registered")
    note = baseline_note(pretrained_name, pretrained_kind)
    rests_on = {name: c.rests_on(inputs) for c in family for name in c.rows}
    for row in rows:
        row["ci_level"] = simultaneous
        row["reason"] += learned_note(control_learned, rests_on[row["claim"]])
        if row["claim"] in COMPARES_PRETRAINED:
            row["reason"] += note
    schema = {"measure": pl.String, "claim": pl.String, "statement": pl.String, "statistic": pl.String,
              "value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "ci_level": pl.Float64,
              "floor": pl.Float64,
              "n_tasks": pl.Int64, "verdict": pl.String, "reason": pl.String, "layers_from": pl.String}
    return pl.DataFrame(rows, schema=schema).with_columns(pl.selectors.float().fill_nan(None)).select(COLUMNS)
