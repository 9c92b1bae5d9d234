"""The task table that `layerwise tasks` prints."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tasks.registry import resolve_tasks
from tasks.template_bank import TEMPLATES


def catalog(source: str = "offline", selection: Sequence[str] = ("all",), probe_size: int = 64,
            val_size: int = 32, test_size: int = 32) -> pl.DataFrame:
    """One row per task: task, cluster, hub_id, templates, unseen, metric and example counts.

    Offline counts come from the mini-Flan pool sizes without generating anything; other
    sources would need the data, so their counts are left null.
    """
    from tasks.miniflan.build import POOL_SIZES

    offline = source == "offline"
    rows = []
    for spec in resolve_tasks(selection):
        rows.append({
            "task": spec.name, "cluster": spec.cluster, "hub_id": spec.hub.id or "", "hub_config": spec.hub.config or "",
            "templates": len(TEMPLATES[spec.format]), "unseen": spec.unseen, "metric": spec.metric,
            "train": POOL_SIZES["train"] if offline else None,
            "validation": min(val_size, POOL_SIZES["validation"]) if offline else None,
            "probe": probe_size if offline else None,
            "test": test_size if offline else None,
        })
    schema = {"task": pl.Utf8, "cluster": pl.Utf8, "hub_id": pl.Utf8, "hub_config": pl.Utf8, "templates": pl.Int64,
              "unseen": pl.Boolean, "metric": pl.Utf8, "train": pl.Int64, "validation": pl.Int64,
              "probe": pl.Int64, "test": pl.Int64}
    return pl.DataFrame(rows, schema=schema)
