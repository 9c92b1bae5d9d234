"""The `analyze` stage: Ray remote tasks turn activations into the study's Polars frames.

- one remote task per task computes, for every layer at once, every selected measure
  (analysis.measures): the pairwise ones for every experimental model (pretrained, E when trained,
  each published checkpoint of model.experimental) against C_t and for the noise-floor
  twins, the single ones for every model, and the primary measure's cross-layer matrices. It reads
  only its own task's slab of the activations and aligns the models' rows by example id with one
  joint mask of non-finite rows;
- the driver derives everything else once (analysis.derive: cka, seed baseline, gaps, layer map,
  findings, correlations, unseen, and score_cka from the evaluate stage's eval.parquet), records
  what the run compared (analysis.frames.inputs: the pretrained model's kind, family and depth, the tasks'
  provenance) and runs t-SNE (one remote task per model
  and layer) at the layers the layer map picks. The findings' reasons name the controls that did not
  learn their task, from the evaluate stage's learned.parquet (which runs first in `layerwise run`); a
  change in those verdicts, or in the scores score_cka reads, makes the analysis stale.
Everything is written as Parquet into <out>/, atomically, and skipped when already current.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import polars as pl

from analysis.roles import (
    CKA,
    CONTROL,
    CROSS_LAYER,
    EVAL,
    FINDINGS,
    INPUTS,
    LAYER_MAP,
    LAYER_STATS,
    LEARNED,
    MULTITASK,
    SIMILARITY,
    TASK_STATS,
    TSNE,
    experimentals,
)
from runner.artifacts.activations import read_task_reps
from runner.artifacts.store import atomic_write_parquet, is_current, loading, mark_done, read_parquet, stamp
from runner.config import AnalysisConfig, stable_hash
from runner.plan import Plan
from runner.stages import ANALYZE, STAGES, activations_dir

log = logging.getLogger("layerwise.analyze")


def measure_selection(cfg: AnalysisConfig) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """(pairwise, single) measures the config selects, each with its parameters."""
    from analysis.frames.task_frames import split_selection

    return split_selection([(name, dict(cfg.measure_params.get(name, {}))) for name in cfg.selected],
                           cfg.primary_measure, cfg.measure_params.get(cfg.primary_measure, {}))


def worker_config(analysis: dict) -> AnalysisConfig:
    """The analysis section inside a Ray worker: validated, the user's measures registered before any
    is looked up."""
    from analysis.plugins import load_plugins

    cfg = AnalysisConfig.model_validate(analysis)
    load_plugins(cfg.plugins)
    return cfg


def analyze_task(activations: str, task: str, cluster: str, analysis: dict,
                 tuned: tuple[str, ...] = (MULTITASK,)) -> dict[str, pl.DataFrame]:
    from analysis.frames.align import align_and_mask
    from analysis.frames.task_frames import task_frames
    from runner.ops import metrics

    cfg = worker_config(analysis)
    _, aligned, dropped = align_and_mask(read_task_reps(Path(activations), task))
    pairwise, single = measure_selection(cfg)
    frames = task_frames(task, cluster, aligned, pairwise, single, primary=cfg.primary_measure,
                         compared=experimentals(tuned), n_dropped=dropped,
                         bootstrap=cfg.bootstrap, permutations=cfg.permutations,
                         calibrate=cfg.calibrate.permutations if cfg.calibrate else 0, seed=cfg.seed, ci=cfg.ci_level,
                         standardize=cfg.standardize, cross_layer=cfg.cross_layer)
    metrics.record_pairs(frames[SIMILARITY].height)
    return frames


def floor_between(activations: tuple[str, str], task: str, cluster: str, analysis: dict) -> pl.DataFrame:
    """The noise floor between two runs (a sweep's cells that differ only in their training seed): the
    primary measure per layer between their controls of `task`, with the measure, parameters and
    standardising of the run's own floor rows (analysis.frames.task_frames: pairwise_frame over the primary
    selection). Columns: pairwise_frame's (experimental "a", control "b"), n_dropped."""
    from analysis.frames.align import align_and_mask
    from analysis.frames.suite import pairwise_frame

    cfg = worker_config(analysis)
    reps = {name: read_task_reps(Path(folder), task)[CONTROL] for name, folder in zip("ab", activations, strict=True)}
    _, aligned, dropped = align_and_mask(reps)
    primary = [spec for spec in measure_selection(cfg)[0] if spec[0] == cfg.primary_measure]
    frame = pairwise_frame(task, cluster, aligned, [("a", "b")], primary, standardize=cfg.standardize)
    return frame.sort("layer").with_columns(pl.lit(dropped).alias("n_dropped"))


def tsne_layer(activations: str, model: str, layer: int, clusters: dict[str, str], analysis: dict) -> pl.DataFrame:
    from analysis.derived.tsne import tsne_frame

    cfg = AnalysisConfig.model_validate(analysis)
    with loading(Path(activations), "activations"):
        rows = (pl.scan_parquet(Path(activations) / "*.parquet")
                .filter((pl.col("model") == model) & (pl.col("layer") == layer))
                .select("task", "example_id", "vector").collect().sort("task", "example_id"))
    vectors = rows["vector"].to_numpy()
    finite = np.isfinite(vectors).all(axis=1)
    tasks = rows["task"].filter(finite).to_list()
    frame = tsne_frame({model: vectors[finite][None]}, tasks, [clusters[t] for t in tasks], layers=[0],
                       perplexity=cfg.tsne_perplexity, seed=cfg.seed, max_points=cfg.tsne_max_points)
    return frame.with_columns(pl.lit(layer, pl.Int64).alias("layer"))


def _gather(refs: dict, desc: str) -> list:
    """ray.get in completion order, with a progress bar naming what just finished."""
    import ray

    from runner.ops.console import bar

    results, progress = [], bar(len(refs), desc)
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        results.append(ray.get(done[0]))
        progress.update(1)
        progress.set_postfix_str(str(refs.pop(done[0])))
    progress.close()
    return results


def derive_options(plan: Plan):
    from analysis.derive import options_for
    from runner.models import checkpoint_kind

    cfg = plan.config.analysis
    pairwise, single = measure_selection(cfg)
    return options_for(pairwise, single, cfg.primary_measure, standardized=cfg.standardize,
                       run_seed=plan.config.training.seed, draws=cfg.task_bootstrap, level=cfg.ci_level, seed=cfg.seed,
                       pretrained_name=plan.config.model.name, pretrained_kind=checkpoint_kind(plan.config.model),
                       tuned=plan.tuned, scores="calibrated" if cfg.calibrate else "raw")


def model_shape(exp) -> tuple[str | None, int | None, int | None]:
    """(model_type, hidden states per example including the embeddings, hidden size) from the
    pretrained model's config.json (its folder, or the HF cache for a hub id); None where unreadable."""
    from runner.models import ModelUnavailableError

    try:
        where = exp.model_dir
    except ModelUnavailableError:
        return None, None, None
    path = Path(where).expanduser() / "config.json"
    if not path.is_file():  # a hub id: the config the extract stage's download cached
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(where, "config.json", revision=exp.config.model.revision)
        except (ImportError, ValueError):
            cached = None
        if not isinstance(cached, str):
            return None, None, None
        path = Path(cached)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None, None
    # Multimodal wrappers (Gemma 3 from 4B on) keep the decoder's sizes in text_config.
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    blocks, hidden = text.get("num_hidden_layers"), text.get("hidden_size")
    return (config.get("model_type"), blocks + 1 if isinstance(blocks, int) else None,
            hidden if isinstance(hidden, int) else None)


def inputs_row(exp, task_stats: pl.DataFrame, measured_layers: int | None) -> pl.DataFrame:
    """The `inputs` row: what this run's pretrained model is and where its tasks' text came from."""
    from analysis.frames.inputs import inputs_frame
    from runner.models import checkpoint_kind

    model_type, layers, hidden = model_shape(exp)
    return inputs_frame(model=exp.config.model.name, model_kind=checkpoint_kind(exp.config.model),
                        model_type=model_type, num_layers=layers or measured_layers, hidden_size=hidden,
                        task_stats=task_stats)


def _marker(plan: Plan) -> Path:
    return plan.out / "analysis"


def outputs(plan: Plan) -> list[Path]:
    """Every frame this stage writes (the marker vouches for each), as the stage table declares them."""
    return list(STAGES[ANALYZE].outputs(plan))


def learned_frame(exp) -> pl.DataFrame:
    """The evaluate stage's learned.parquet, or an empty frame (no control checked) when evaluation is off."""
    from analysis.derived.learned import unchecked

    path = exp.plan.out / f"{LEARNED}.parquet"
    if exp.config.evaluation.enabled and path.exists():
        return read_parquet(path, "learned frame")
    return unchecked()


def scores_frame(exp) -> pl.DataFrame | None:
    """The evaluate stage's eval.parquet when there is one (score_cka joins it with the cka frame), else None."""
    path = exp.plan.out / f"{EVAL}.parquet"
    return read_parquet(path, "eval frame") if path.exists() else None


def _inputs(exp, learned: pl.DataFrame | None = None, scores: pl.DataFrame | None = None) -> str:
    """The activations' marker, the controls' learned verdicts (`learned`, else read): the findings' reasons
    name them, and the task scores (`scores`, else read) that score_cka holds, when there are any."""
    from analysis.derived.learned import control_verdicts

    verdicts = sorted(control_verdicts(learned_frame(exp) if learned is None else learned).items())
    inputs = f"{stamp(activations_dir(exp.plan))}+{stable_hash(verdicts)}"
    scores = scores_frame(exp) if scores is None else scores
    if scores is None:
        return inputs
    columns = ("model", "task", "cluster", "metric", "score")
    return f"{inputs}+{stable_hash(scores.select(columns).sort(columns[:4]).rows())}"


def current(exp) -> bool:
    # A run analysed before the inputs frame existed is analysed again (its findings lack the notes too).
    return (is_current(_marker(exp.plan), exp.plan.key(ANALYZE), _inputs(exp))
            and (exp.plan.out / f"{INPUTS}.parquet").is_file())


def describe(exp) -> list[str]:
    plan, cfg = exp.plan, exp.config.analysis
    state = "done" if current(exp) else "todo"
    pairwise, single = measure_selection(cfg)
    return [f"analyze: [{state}] {len(plan.tasks)} remote tasks; {', '.join(experimentals(plan.tuned))} against "
            f"each control; pairwise {', '.join(n for n, _ in pairwise)} "
            f"(primary {cfg.primary_measure}); per layer {', '.join(n for n, _ in single) or 'none'} -> {plan.out}"]


def run(exp) -> dict[str, pl.DataFrame]:
    """Write every frame of the study into <out>/ unless already computed for this key."""
    import ray

    from analysis.derive import derive_frames
    from analysis.derived.tsne import tsne_layers
    from tasks import task_statistics

    plan = exp.plan
    if current(exp):
        log.info("analyze: cka.parquet is current, skipping")
        return {}
    started, cfg = time.time(), plan.config.analysis
    activations, analysis = str(activations_dir(plan)), cfg.model_dump(mode="json")
    remote = ray.remote(num_cpus=1)(analyze_task)
    per_task = _gather({remote.remote(activations, t.name, t.cluster, analysis, plan.tuned): t.name
                        for t in plan.tasks}, "analyze")
    frames = {name: pl.concat([f[name] for f in per_task if name in f], how="diagonal_relaxed")
              for name in (SIMILARITY, LAYER_STATS, CROSS_LAYER) if any(name in f for f in per_task)}
    frames[TASK_STATS] = task_statistics(exp.splits)
    learned = learned_frame(exp)  # read once: the verdicts the findings name are the ones recorded
    scores = scores_frame(exp)  # likewise the scores score_cka holds
    frames.update(derive_frames(frames[SIMILARITY], frames.get(LAYER_STATS), frames[TASK_STATS], derive_options(plan),
                                learned=learned, task_scores=scores))
    frames[INPUTS] = inputs_row(exp, frames[TASK_STATS], frames[CKA]["layer"].n_unique())
    if cfg.tsne:
        clusters = {t.name: t.cluster for t in plan.tasks}
        primary_map = frames[LAYER_MAP].filter(pl.col("measure") == cfg.primary_measure)
        layers = tsne_layers(primary_map, frames[CKA]["layer"].n_unique(), cfg.tsne_layers)
        tsne = ray.remote(num_cpus=1)(tsne_layer)
        refs = {tsne.remote(activations, model, layer, clusters, analysis): f"{model} layer {layer}"
                for model in experimentals(plan.tuned) for layer in layers}
        frames[TSNE] = pl.concat(_gather(refs, "t-SNE"))
    for name, frame in frames.items():
        atomic_write_parquet(frame, plan.out / f"{name}.parquet")
    written = [plan.out / f"{name}.parquet" for name in frames]
    for stale in set(outputs(plan)) - set(written):  # a frame an earlier config wrote and this one does not
        stale.unlink(missing_ok=True)
    mark_done(_marker(plan), plan.key(ANALYZE), files=written, inputs=_inputs(exp, learned, scores),
              seconds=round(time.time() - started, 2),
              rows=frames[CKA].height)
    return frames


def summary(exp) -> list[str]:
    """The primary measure's verdicts (of the primary experimental model), tallied."""
    path, primary = exp.plan.out / f"{FINDINGS}.parquet", exp.config.analysis.primary_measure
    if not path.exists():
        return []
    f = pl.read_parquet(path).filter(pl.col("measure") == primary)
    if "experimental" in f.columns and f.height:  # the primary experimental model's verdicts
        f = f.filter(pl.col("experimental") == f["experimental"][0])
    tally = ", ".join(f"{n} {v}" for v, n in f["verdict"].value_counts().sort("verdict").iter_rows())
    return [f"findings ({primary}): {tally}"]
