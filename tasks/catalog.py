"""The task table that `layerwise tasks` prints."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tasks.registry import resolve_tasks
from tasks.sources import provenance
from tasks.templates import template_pairs


def _available(spec) -> str:
    """The package a packaged task would be built from now (built, cached or served), or "none"."""
    from tasks.packaged import PackagedSourceError, build, fetch

    try:
        return fetch.package(build.chosen(spec, online=True).packaged.package).label
    except PackagedSourceError:
        return "none"


def catalog(source: str = "packaged", selection: Sequence[str] = ("all",), served: bool = False) -> pl.DataFrame:
    """One row per task: task, cluster, unseen, metric, templates, where its rows come from under
    `source` (provenance, licence, synthetic, derived), its hub dataset (the cluster's source) and its
    pool sizes where known without loading data (the mini-Flan's fixed pools; packaged real text once
    built in this cache). `served`: also `available`, the package a packaged task would be built from
    now ("none" where no source of it is served; asks the package indexes)."""
    from tasks.miniflan.build import POOL_SIZES
    from tasks.packaged import pool_sizes

    rows = []
    for spec in resolve_tasks(selection):
        p = provenance(spec, source)
        if spec.files is not None:  # a user's files: small and local, read (and checked) here
            from tasks.userfiles import file_pool_sizes

            sizes = file_pool_sizes(spec)
        elif source == "packaged" and spec.packaged is not None:
            sizes = pool_sizes(spec) or {}
        elif source in ("offline", "packaged") and spec.generator is not None:
            sizes = dict(POOL_SIZES)
        else:
            sizes = {}
        rows.append({
            "task": spec.name, "cluster": spec.cluster, "unseen": spec.unseen, "metric": spec.metric,
            "templates": len(template_pairs(spec)), "synthetic": p.synthetic, "provenance": p.text,
            "licence": p.licence, "hub_id": spec.hub.id or "", "train": sizes.get("train"), "validation": sizes.get("validation"),
            "heldout": sizes.get("heldout"), "derived": p.derived or None,
            **({"available": _available(spec) if source == "packaged" and spec.packaged else "-"} if served else {}),
        })
    schema = {"task": pl.Utf8, "cluster": pl.Utf8, "unseen": pl.Boolean, "metric": pl.Utf8, "templates": pl.Int64,
              "synthetic": pl.Boolean, "provenance": pl.Utf8, "licence": pl.Utf8, "hub_id": pl.Utf8, "train": pl.Int64,
              "validation": pl.Int64, "heldout": pl.Int64, "derived": pl.Utf8, **({"available": pl.Utf8} if served else {})}
    return pl.DataFrame(rows, schema=schema)
