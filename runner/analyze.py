"""The `analyze` stage: Ray remote tasks turn activations into the study's Polars frames.

- one remote task per task computes, for every layer at once: CKA of pretrained and E against
  C_t (with optional confidence intervals and permutation null), the cross-layer CKA matrices
  and the PCA dimensions. It reads only its own task's slab of the activations and aligns the
  three models' rows by example id with one joint mask of non-finite rows;
- one remote task per (model, layer) runs t-SNE over every task's probes at the layers the
  layer map picks;
- the driver derives the layer map, the correlations with readability and data size, and the
  unseen-task comparison from those frames.
Everything is written as Parquet into <out>/, atomically, and skipped when already current.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import ray

from runner import metrics
from runner.config import AnalysisConfig
from runner.plan import CONTROL, MULTITASK, PRETRAINED, Plan
from runner.progress import bar
from runner.store import atomic_write_parquet, is_done, mark_done

log = logging.getLogger("layerwise.analyze")
EXPERIMENTALS = (PRETRAINED, MULTITASK)
FRAMES = ("cka", "cross_layer", "pca", "tsne", "layer_map", "correlations", "unseen", "task_stats")


def _to_array(rows: pl.DataFrame, ids: list[str], where: str) -> np.ndarray:
    layers = rows["layer"].n_unique()
    if rows.height != layers * len(ids) or rows["example_id"].to_list() != ids * layers:
        raise ValueError(f"{where} has ragged layers; delete the activations folder and re-run `layerwise extract`")
    return rows["vector"].to_numpy().reshape(layers, len(ids), -1)


def read_task_reps(activations: Path, task: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """model -> (example ids, [layers, n, d] float32) for one task."""
    frame = (pl.scan_parquet(activations / "*.parquet").filter(pl.col("task") == task)
             .select("model", "layer", "example_id", "vector").collect())
    if frame.is_empty():
        raise ValueError(f"{activations}: no activations for task {task!r}; re-run `layerwise extract`")
    reps = {}
    for (model,), rows in frame.group_by("model"):
        rows = rows.sort("layer", "example_id")
        ids = rows.filter(pl.col("layer") == rows["layer"].min())["example_id"].to_list()
        reps[model] = (ids, _to_array(rows, ids, f"{activations}: task {task!r} model {model!r}"))
    return reps


@ray.remote(num_cpus=1)
def analyze_task(activations: str, task: str, cluster: str, analysis: dict) -> dict[str, pl.DataFrame]:
    from analysis.align import align_and_mask
    from analysis.pca import pca_frame
    from analysis.suite import cross_layer_frame, task_cka_frame

    cfg = AnalysisConfig.model_validate(analysis)
    _, aligned, dropped = align_and_mask(read_task_reps(Path(activations), task))
    kernel = {"kernel": cfg.kernel, "debiased": cfg.debiased, "threshold": cfg.rbf_threshold}
    cka = task_cka_frame(task, cluster, aligned, control=CONTROL, experimentals=EXPERIMENTALS, **kernel,
                         bootstrap=cfg.bootstrap, permutations=cfg.permutations, seed=cfg.seed)
    frames = {"cka": cka.with_columns(pl.lit(dropped).alias("n_dropped")),
              "pca": pca_frame(task, cluster, aligned, threshold=cfg.pca_threshold)}
    if cfg.cross_layer:
        frames["cross_layer"] = cross_layer_frame(task, cluster, aligned, CONTROL, EXPERIMENTALS, **kernel)
    metrics.record_pairs(sum(f.height for name, f in frames.items() if name != "pca"))
    return frames


@ray.remote(num_cpus=1)
def tsne_layer(activations: str, model: str, layer: int, clusters: dict[str, str], analysis: dict) -> pl.DataFrame:
    from analysis.tsne import tsne_frame

    cfg = AnalysisConfig.model_validate(analysis)
    rows = (pl.scan_parquet(Path(activations) / "*.parquet")
            .filter((pl.col("model") == model) & (pl.col("layer") == layer))
            .select("task", "example_id", "vector").collect().sort("task", "example_id"))
    vectors = rows["vector"].to_numpy()
    finite = np.isfinite(vectors).all(axis=1)
    tasks = rows["task"].filter(finite).to_list()
    frame = tsne_frame({model: vectors[finite][None]}, tasks, [clusters[t] for t in tasks], layers=[0],
                       perplexity=cfg.tsne_perplexity, seed=cfg.seed, max_points=cfg.tsne_max_points)
    return frame.with_columns(pl.lit(layer, pl.Int64).alias("layer"))


def tsne_layers(cfg: AnalysisConfig, layer_map: pl.DataFrame | None, n_layers: int) -> list[int]:
    """The configured layers, else the first, last and middle of every layer-map segment."""
    if cfg.tsne_layers is not None:
        return [layer for layer in cfg.tsne_layers if layer < n_layers]
    picks = {0, n_layers - 1}
    if layer_map is not None:
        from analysis.layer_map import layer_ranges

        picks |= {(first + last) // 2 for _, first, last in layer_ranges(layer_map)}
    else:
        picks |= {n_layers // 3, 2 * n_layers // 3}
    return sorted(picks)


def _gather(refs: dict, desc: str) -> list:
    """ray.get in completion order, with a progress bar naming what just finished."""
    results, progress = [], bar(len(refs), desc)
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        results.append(ray.get(done[0]))
        progress.update(1)
        progress.set_postfix_str(str(refs.pop(done[0])))
    progress.close()
    return results


def derived_frames(cka: pl.DataFrame, stats: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    from analysis.correlate import correlation_frame
    from analysis.layer_map import layer_map_frame
    from analysis.unseen import unseen_frame

    frames = {}
    try:
        frames["layer_map"] = layer_map_frame(cka)
    except ValueError as err:  # too few layers or experimentals for change points
        log.warning("analyze: no layer map (%s)", err)
    if (cka["cluster"] == "unseen").any() and (cka["cluster"] != "unseen").any():
        frames["unseen"] = unseen_frame(cka)
    if stats is not None and cka["task"].n_unique() >= 3:
        frames["correlations"] = correlation_frame(cka, stats)
    return frames


def run_analysis(plan: Plan, stats: pl.DataFrame | None = None) -> dict[str, pl.DataFrame]:
    """Write every frame of the study into <out>/ unless already computed for this key."""
    marker = plan.out / "analysis"
    if (plan.out / "cka.parquet").exists() and is_done(marker, plan.analyze_key):
        log.info("analyze: cka.parquet is current, skipping")
        return {name: pl.read_parquet(plan.out / f"{name}.parquet")
                for name in FRAMES if (plan.out / f"{name}.parquet").exists()}
    started, cfg = time.time(), plan.config.analysis
    activations, analysis = str(plan.activations_dir), cfg.model_dump(mode="json")
    per_task = _gather({analyze_task.remote(activations, t.name, t.cluster, analysis): t.name for t in plan.tasks},
                       "analyze")
    frames = {name: pl.concat([f[name] for f in per_task if name in f], how="diagonal_relaxed")
              for name in ("cka", "pca", "cross_layer") if any(name in f for f in per_task)}
    frames["cka"] = frames["cka"].sort("experimental", "task", "layer")
    frames.update(derived_frames(frames["cka"], stats))
    if cfg.tsne:
        clusters = {t.name: t.cluster for t in plan.tasks}
        layers = tsne_layers(cfg, frames.get("layer_map"), frames["cka"]["layer"].n_unique())
        refs = {tsne_layer.remote(activations, model, layer, clusters, analysis): f"{model} layer {layer}"
                for model in EXPERIMENTALS for layer in layers}
        frames["tsne"] = pl.concat(_gather(refs, "t-SNE"))
    if stats is not None:
        frames["task_stats"] = stats
    for name, frame in frames.items():
        atomic_write_parquet(frame, plan.out / f"{name}.parquet")
    mark_done(marker, plan.analyze_key, seconds=round(time.time() - started, 2), rows=frames["cka"].height)
    return frames
