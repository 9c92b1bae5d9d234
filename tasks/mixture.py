"""Examples-proportional mixing with a rate cap (Raffel et al. 2020), and the paper's caps."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import datasets
import numpy as np

from tasks.registry import get_task

MIXING_CAP = 3_000  # K: no task gains weight for examples beyond 3,000
PER_CLUSTER_CAP = 50_000  # the paper: at most 50k training examples per cluster


def mixing_rates(sizes: Mapping[str, int], cap: int = MIXING_CAP) -> dict[str, float]:
    """rate_t = min(e_t, K) / sum_u min(e_u, K)."""
    if cap <= 0:
        raise ValueError(f"cap must be positive, got {cap}")
    capped = {t: min(max(int(e), 0), cap) for t, e in sizes.items()}
    total = sum(capped.values())
    if total == 0:
        raise ValueError("mixing_rates: every task has zero examples")
    return {t: c / total for t, c in capped.items()}


def _apportion(total: int, rates: Mapping[str, float]) -> dict[str, int]:
    """Integer counts summing to `total`, proportional to the rates (largest remainder)."""
    raw = {t: r * total for t, r in rates.items()}
    counts = {t: int(np.floor(v)) for t, v in raw.items()}
    short = total - sum(counts.values())
    for t in sorted(raw, key=lambda t: (counts[t] - raw[t], t))[:short]:
        counts[t] += 1
    return counts


def cluster_caps(sizes: Mapping[str, int], clusters: Mapping[str, str], per_dataset_cap: int | None = 30_000,
                 per_cluster_cap: int | None = PER_CLUSTER_CAP) -> dict[str, int]:
    """Training examples kept per task: first the per-dataset cap, then each cluster's total
    is scaled down proportionally to at most per_cluster_cap."""
    kept = {t: min(int(e), per_dataset_cap) if per_dataset_cap is not None else int(e) for t, e in sizes.items()}
    if per_cluster_cap is None:
        return kept
    for cluster in set(clusters.values()):
        members = [t for t in kept if clusters[t] == cluster]
        total = sum(kept[t] for t in members)
        if total > per_cluster_cap:
            share = _apportion(per_cluster_cap, {t: kept[t] / total for t in members})
            kept.update({t: min(kept[t], share[t]) for t in members})
    return kept


def _cluster_of(name: str, ds: datasets.Dataset) -> str:
    if "cluster" in ds.column_names and len(ds):
        return ds[0]["cluster"]
    return get_task(name).cluster


def cap_train_sets(train_sets: Mapping[str, datasets.Dataset], per_dataset_cap: int | None = 30_000,
                   per_cluster_cap: int | None = PER_CLUSTER_CAP) -> dict[str, datasets.Dataset]:
    """Apply the per-dataset and per-cluster caps (keeps each task's first rows)."""
    clusters = {t: _cluster_of(t, ds) for t, ds in train_sets.items()}
    keep = cluster_caps({t: len(ds) for t, ds in train_sets.items()}, clusters, per_dataset_cap, per_cluster_cap)
    return {t: ds if keep[t] == len(ds) else ds.select(range(keep[t])) for t, ds in train_sets.items()}


def build_mixture(train_sets: Mapping[str, datasets.Dataset], cap: int = MIXING_CAP, seed: int = 0,
                  total: int | None = None, per_dataset_cap: int | None = 30_000,
                  per_cluster_cap: int | None = PER_CLUSTER_CAP) -> datasets.Dataset:
    """One shuffled multi-task training set whose task shares follow `mixing_rates`.

    Caps are applied first. `total` defaults to the capped number of examples; each task
    contributes round(rate_t * total) rows (largest remainder, so the counts sum to total),
    drawn without replacement and re-drawn in a fresh order when a small task wraps around.
    """
    sets = cap_train_sets({t: ds for t, ds in train_sets.items() if len(ds)}, per_dataset_cap, per_cluster_cap)
    if not sets:
        raise ValueError("build_mixture: no training examples")
    rates = mixing_rates({t: len(ds) for t, ds in sets.items()}, cap)
    total = sum(len(ds) for ds in sets.values()) if total is None else int(total)
    counts = _apportion(total, rates)
    parts = []
    for name in sorted(sets):
        ds, need = sets[name], counts[name]
        if need == 0:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        reps = -(-need // len(ds))
        idx = np.concatenate([rng.permutation(len(ds)) for _ in range(reps)])[:need]
        parts.append(ds.select(idx.tolist()))
    mixed = datasets.concatenate_datasets(parts)
    order = np.random.default_rng(seed).permutation(len(mixed))
    return mixed.select(order.tolist()).flatten_indices()
