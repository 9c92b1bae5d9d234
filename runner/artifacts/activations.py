"""Reading the activation payloads the extract stage wrote: <out>/activations/<key>/*.parquet, one
row per (example, model, layer), the vector a plain fixed-size list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from runner.artifacts.store import ArtifactError, loading


def _to_array(rows: pl.DataFrame, ids: list[str], where: str) -> np.ndarray:
    layers = rows["layer"].n_unique()
    if rows.height != layers * len(ids) or rows["example_id"].to_list() != ids * layers:
        raise ArtifactError(f"{where} has ragged layers; delete the activations folder and re-run `layerwise extract`")
    return rows["vector"].to_numpy().reshape(layers, len(ids), -1)


def read_task_reps(activations: Path, task: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """model -> (example ids, [layers, n, d] float32) for one task."""
    with loading(activations, "activations"):
        frame = (pl.scan_parquet(activations / "*.parquet").filter(pl.col("task") == task)
                 .select("model", "layer", "example_id", "vector").collect())
    if frame.is_empty():
        raise ArtifactError(f"{activations}: no activations for task {task!r}; re-run `layerwise extract`")
    reps = {}
    for (model,), rows in frame.group_by("model"):
        rows = rows.sort("layer", "example_id")
        ids = rows.filter(pl.col("layer") == rows["layer"].min())["example_id"].to_list()
        reps[model] = (ids, _to_array(rows, ids, f"{activations}: task {task!r} model {model!r}"))
    return reps
